"""Live TokenMatrix: selection -> recompute, caching, last selection wins, errors, busy state."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from attrwidgets.errors import AttrWidgetsError
from attrwidgets.widgets import TokenMatrix, checksum
from attrwidgets.widgets.token_matrix import LIVE_REFINEMENT

from .support import FakeSession, expected_scores, wait_until, wire_state

PROMPT = "The capital of France is"


# -- the real core session (tiny random model) ------------------------------------------------------
def test_selected_target_from_python_gives_the_session_row(tiny):
    w = TokenMatrix(model=tiny, prompt=PROMPT, method="integrated_gradients", n_steps=8, max_new_tokens=4)
    w.wait(120)
    assert w.error == "" and w.busy is False
    assert w.llm_id == "tiny-llama" and w.methods == ["attention", "input_x_gradient", "integrated_gradients",
                                                       "layer_integrated_gradients", "saliency"]
    w.selected_target = 2
    w.wait(120)
    state = wire_state(w)
    # A live view's IG refines to the view's tolerance from a first pass of a few steps (LIVE_REFINEMENT).
    expected = w.session.compute("integrated_gradients", rows=[2], progress=False, n_steps=8, **LIVE_REFINEMENT)
    np.testing.assert_allclose(state["scores"][2], expected.scores[2], rtol=1e-5, atol=1e-7)
    assert checksum(state["scores"][2]) == checksum(w.scores[2])
    assert np.isfinite(state["completeness_error"][[0, 2]]).all()
    assert np.isnan(state["scores"][[1, 3]]).all()  # IG computes only the rows asked for
    assert w.result.computed_rows.tolist() == [True, False, True, False]
    assert w.result.options["n_steps"] == 8
    w.close()


def test_cheap_method_fills_every_row_once(tiny):
    from attrwidgets.core.token.session import AttributionSession

    session = AttributionSession(tiny, PROMPT, max_new_tokens=3)
    calls = []
    real = session.compute
    session.compute = lambda *a, **k: calls.append((a, k.get("rows"))) or real(*a, **k)
    w = TokenMatrix(session=session, method="saliency").wait(60)
    w.selected_target = 1
    w.selected_target = 2
    w.wait(60)
    assert calls == [(("saliency",), None)]  # one call, all rows
    np.testing.assert_allclose(wire_state(w)["scores"], real("saliency", progress=False).scores, rtol=1e-5)
    assert wire_state(w)["completeness_error"] is None
    assert w.llm_id == "tiny-llama"
    w.close()


def test_core_errors_show_in_trait_and_widget_keeps_working(tiny):
    w = TokenMatrix(model=tiny, prompt=PROMPT, method="saliency", max_new_tokens=3).wait(60)
    before = w.scores.copy()
    w.method = "integrated_gradient"  # typo: not a method
    w.wait(60)
    assert "Unknown method 'integrated_gradient'" in w.error
    w.method = "saliency"
    w.wait(60)
    assert w.error == ""
    np.testing.assert_array_equal(w.scores, before)  # served from the cache
    w.close()


def test_unknown_method_option_fails_at_construction_with_hint(tiny):
    with pytest.raises(AttrWidgetsError, match="Did you mean 'baseline'"):
        TokenMatrix(model=tiny, prompt=PROMPT, method="integrated_gradients", baselin="zeros")
    with pytest.raises(TypeError, match="Did you mean 'normalization'"):
        TokenMatrix(model=tiny, prompt=PROMPT, normalisation="global")
    with pytest.raises(AttrWidgetsError, match="model=<ModelHandle> and prompt"):
        TokenMatrix(model=tiny)


# -- a scripted fake session -------------------------------------------------------------------------
def test_method_options_and_n_steps_reach_compute():
    s = FakeSession()
    w = TokenMatrix(session=s, method="integrated_gradients", n_steps=4, baseline="zeros", objective="logit")
    w.wait(10)
    assert s.calls == [("integrated_gradients", (0,), {"baseline": "zeros", "objective": "logit", "n_steps": 4})]
    w.method = "saliency"  # takes objective, not baseline or n_steps
    w.wait(10)
    assert s.calls[-1] == ("saliency", None, {"objective": "logit"})
    np.testing.assert_array_equal(w.scores, expected_scores("saliency"))
    w.method = "integrated_gradients"
    w.n_steps = 16  # a new cache key: recompute the selected row
    w.wait(10)
    assert s.calls[-1][2]["n_steps"] == 16
    np.testing.assert_array_equal(w.scores[0], expected_scores("integrated_gradients", 16)[0])
    np.testing.assert_allclose(w.completeness_error[0], 1 / 16)
    n = len(s.calls)
    w.n_steps = 4  # back to a cached key: no compute
    w.wait(10)
    assert len(s.calls) == n
    np.testing.assert_array_equal(w.scores[0], expected_scores("integrated_gradients", 4)[0])


def test_browser_selection_recomputes_only_that_row():
    s = FakeSession()
    w = TokenMatrix(session=s, method="integrated_gradients", n_steps=2).wait(10)
    w.set_state({"selected_target": 2})  # as sent by a click in the view
    w.wait(10)
    assert [c[1] for c in s.calls] == [(0,), (2,)]
    state = wire_state(w)
    np.testing.assert_array_equal(state["scores"][2], expected_scores("integrated_gradients", 2)[2])
    assert np.isnan(state["scores"][1]).all()
    w.set_state({"selected_target": 0})  # cached row: nothing recomputed
    w.wait(10)
    assert len(s.calls) == 2


def test_last_selection_wins_with_slow_session():
    # Row 0 is slow; the user moves on to 1 and then 2 while it runs. Row 1's request is superseded before it
    # starts (skipped), row 0's stale run is cancelled, and the view ends on row 2's result.
    s = FakeSession(delays={("integrated_gradients", 0): 2.0})
    w = TokenMatrix(session=s, method="integrated_gradients", n_steps=2)
    wait_until(lambda: len(s.calls) == 1)
    assert w.busy
    w.selected_target = 1
    w.selected_target = 2
    w.wait(10)
    assert w.busy is False and w.error == ""
    assert [c[1] for c in s.calls] == [(0,), (2,)]
    assert s.cancelled == [("integrated_gradients", (0,))]
    assert w.selected_target == 2
    np.testing.assert_array_equal(w.scores[2], expected_scores("integrated_gradients", 2)[2])
    assert checksum(wire_state(w)["scores"][2]) == checksum(expected_scores("integrated_gradients", 2)[2])


def test_stale_result_never_overwrites_newer_method():
    # A stale run that cannot be cancelled (no `cancel` parameter) finishes after the newer request.
    class Uncancellable(FakeSession):
        def compute(self, method, rows=None, progress=True, **options):
            return super().compute(method, rows=rows, progress=progress, **options)

    gate = threading.Event()
    s = Uncancellable(gate=gate)
    w = TokenMatrix(session=s, method="integrated_gradients", n_steps=2)
    wait_until(lambda: len(s.calls) == 1)  # IG row 0 is blocked on the gate
    w.method = "saliency"
    gate.set()
    w.wait(10)
    assert w.method == "saliency"
    np.testing.assert_array_equal(w.scores, expected_scores("saliency"))
    assert w.completeness_error is None
    w.method = "integrated_gradients"  # the stale IG row was cached for its own key: no recompute
    w.wait(10)
    assert len(s.calls) == 2
    np.testing.assert_array_equal(w.scores[0], expected_scores("integrated_gradients", 2)[0])


def test_busy_while_computing_and_updates_batched(monkeypatch):
    gate = threading.Event()
    s = FakeSession(gate=gate)
    w = TokenMatrix(session=s, method="integrated_gradients")
    sent = []
    monkeypatch.setattr(w, "_send", lambda msg, buffers=None: sent.append((msg, buffers)))
    wait_until(lambda: len(s.calls) == 1)
    assert w.busy is True
    gate.set()
    w.wait(10)
    assert w.busy is False
    data = [(m, b) for m, b in sent if "scores" in m["state"]]
    assert len(data) == 1  # scores and completeness_error in one message (hold_sync)
    msg, buffers = data[0]
    assert set(msg["state"]) >= {"scores", "completeness_error"}
    assert ["scores", "buffer"] in msg["buffer_paths"] and len(buffers) == 2  # binary, not JSON lists
    assert any(m["state"].get("busy") is False for m, _ in sent)


def test_compute_failure_sets_error_and_widget_keeps_working():
    s = FakeSession(fail={"input_x_gradient": RuntimeError("CUDA out of memory")})
    w = TokenMatrix(session=s, method="saliency").wait(10)
    cached = w.scores.copy()
    w.method = "input_x_gradient"
    w.wait(10)
    assert w.error == "RuntimeError: CUDA out of memory" and w.busy is False
    assert np.isnan(w.scores).all()  # nothing for this method yet; shown as not computed
    s.fail.clear()
    w.method = "saliency"  # cache intact
    w.wait(10)
    assert w.error == ""
    np.testing.assert_array_equal(w.scores, cached)
    w.method = "input_x_gradient"  # retried and now works
    w.wait(10)
    assert w.error == ""
    np.testing.assert_array_equal(w.scores, expected_scores("input_x_gradient"))


def test_attrwidgets_error_message_shown_verbatim():
    s = FakeSession(fail={"integrated_gradients": AttrWidgetsError("n_steps must be at most 4096: lower it.")})
    w = TokenMatrix(session=s, method="integrated_gradients").wait(10)
    assert w.error == "n_steps must be at most 4096: lower it."


def test_session_keyword_conflicts():
    with pytest.raises(AttrWidgetsError, match="do not pass"):
        TokenMatrix(session=FakeSession(), prompt="again")
    with pytest.raises(TypeError, match="unexpected keyword argument 'tokens'"):
        TokenMatrix(session=FakeSession(), tokens=[])


def test_result_before_anything_computed_is_all_nan():
    gate = threading.Event()
    w = TokenMatrix(session=FakeSession(gate=gate), method="integrated_gradients", n_steps=3)
    r = w.result
    assert r.method == "integrated_gradients" and r.options == {"n_steps": 3}
    assert not r.computed_rows.any()
    gate.set()
    w.wait(10)
    assert w.result.computed_rows.tolist() == [True, False, False]


def test_wait_times_out_and_close_stops_worker():
    before = set(threading.enumerate())
    gate = threading.Event()
    w = TokenMatrix(session=FakeSession(gate=gate), method="saliency")
    with pytest.raises(TimeoutError):
        w.wait(0.05)
    workers = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert workers  # the row is computing on the view's worker thread
    gate.set()
    w.close()
    for t in workers:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in workers)  # close ended the worker: no thread left behind


def test_no_duplicate_compute_when_returning_to_a_running_row():
    class Uncancellable(FakeSession):
        def compute(self, method, rows=None, progress=True, **options):
            return super().compute(method, rows=rows, progress=progress, **options)

    gate = threading.Event()
    s = Uncancellable(gate=gate)
    w = TokenMatrix(session=s, method="integrated_gradients", n_steps=2)
    wait_until(lambda: len(s.calls) == 1)
    w.selected_target = 1  # row 0 can not be cancelled and keeps running
    w.selected_target = 0  # back to row 0: its running job is still wanted
    gate.set()
    w.wait(10)
    assert [c[1] for c in s.calls] == [(0,)]
    np.testing.assert_array_equal(w.scores[0], expected_scores("integrated_gradients", 2)[0])


def test_live_rows_clicked_one_by_one_equal_aw_attribute():
    """The live view computes one row per click; a script computes all rows at once: the same numbers (row 3 was
    0.66% of its maximum apart while the adaptive quadrature chose nodes jointly for the rows of a batch)."""
    import attrwidgets as aw
    from attrwidgets.testing import tiny_handle

    handle = tiny_handle("llama")
    kwargs = {"method": "integrated_gradients", "n_steps": 16, "max_new_tokens": 4}
    w = TokenMatrix(model=handle, prompt="The capital of France is", **kwargs)
    expected = aw.attribute(handle, "The capital of France is", progress=False, **kwargs, **LIVE_REFINEMENT)
    try:
        for row in (3, 0, 2, 1):
            w.selected_target = row
            w.wait(120)
        assert w.error == ""
        live = w.result
        scale = np.abs(expected.scores).max(axis=1, keepdims=True)
        np.testing.assert_allclose(live.scores, expected.scores, rtol=1e-4, atol=1e-5 * float(scale.min()))
    finally:
        w.close()


def test_integrated_gradients_refine_in_the_view_and_the_final_row_replaces_them():
    """The live view shows each intermediate answer, marked as refining with its own completeness error, then the
    final one (docs/methods/token.md, "In a live view")."""
    from attrwidgets.testing import tiny_handle

    w = TokenMatrix(model=tiny_handle("llama"), prompt=PROMPT, method="integrated_gradients", max_new_tokens=2,
                    n_steps=64, first_steps=4, tol=1e-7, baseline="zero")
    seen = []
    w.observe(lambda change: seen.append((change["new"], w.completeness_error[1])), names="refining")
    w.selected_target = 1
    w.wait(120)
    refining = [(pairs, error) for pairs, error in seen if pairs]
    assert refining, "no intermediate answer was shown"
    assert all(pairs[-1][0] == 1 and pairs[-1][1] >= 4 for pairs, _ in refining)
    assert w.refining == [] and w.error == ""
    final = w.session.compute("integrated_gradients", rows=[1], progress=False, n_steps=64, first_steps=4,
                              tol=1e-7, baseline="zero")
    np.testing.assert_array_equal(w.scores[1], final.scores[1])
    assert w.completeness_error[1] == final.completeness_error[1]
    w.close()
