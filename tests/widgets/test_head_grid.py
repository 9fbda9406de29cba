"""HeadGrid: static construction, traits and their wire form, on-request detail, attention statistics, the
attention-only mode, the linked chart, export; live selection -> recompute with a fake and a real session."""

from __future__ import annotations

import base64
import json
import re
import threading

import ipywidgets
import numpy as np
import pytest
import traitlets
from ipywidgets.widgets.widget import _put_buffers, _remove_buffers

from attrwidgets.errors import AttrWidgetsError
from attrwidgets.export_html import to_html
from attrwidgets.widgets import TokenMatrix, checksum
from attrwidgets.widgets.head_chart import chart_data
from attrwidgets.widgets.head_grid import HeadGrid
from attrwidgets.widgets.head_stats import attention_stats, thumbnails
from attrwidgets.widgets.live_values import LiveValues
from attrwidgets.widgets.serialization import deserialize_tensor

from .head_support import (
    N_HEADS,
    N_LAYERS,
    FakeHeadSession,
    causal_attention,
    expected_contributions,
    head_tokens,
    make_head_result,
)
from .support import HOSTILE, FakeSession, wait_until

PROMPT = "The capital of France is"


TENSORS = ("contributions", "attention_stats", "thumbnails", "detail_attention", "detail_contribution",
           "completeness_error")


def wire(widget) -> tuple[dict, dict]:
    """(decoded state, wire dtypes) as the browser receives them: JSON + binary buffers."""
    state, paths, buffers = _remove_buffers(widget.get_state())
    assert all(isinstance(b, (memoryview, bytes, bytearray)) for b in buffers)
    _put_buffers(state, paths, buffers)
    dtypes = {k: state[k]["dtype"] for k in TENSORS if state.get(k) is not None}
    for k in TENSORS:
        state[k] = deserialize_tensor(state.get(k))
    json.dumps({k: v for k, v in state.items() if k not in TENSORS}, allow_nan=False)  # strict JSON only
    return state, dtypes


# -- static ----------------------------------------------------------------------------------------------
def test_static_traits_shapes_and_wire_form():
    hc = make_head_result(position=4)
    w = HeadGrid(hc)
    state, dtypes = wire(w)
    assert (w.n_layers, w.n_heads) == (N_LAYERS, N_HEADS) and w.llm_id == "fake-heads"
    assert w.target_positions == [5] and w.query_positions == [4] and w.target_labels == [" sat"]
    assert w.selected_target == 0 and w.selected_head == -1 and w.mode == "depass"
    np.testing.assert_array_equal(state["contributions"], hc.contributions)
    assert state["target_logit"] == pytest.approx(hc.logit) and np.testing.assert_allclose(state["completeness_error"], [1e-6]) is None
    assert dtypes == {"contributions": "float32", "attention_stats": "float32", "thumbnails": "float16",
                      "completeness_error": "float32"}
    assert state["thumbnails"].shape == (N_LAYERS, N_HEADS, 8, 8)  # T = 8 < 24: the patterns themselves
    np.testing.assert_allclose(state["thumbnails"], hc.attention, atol=1e-3)
    assert state["detail_attention"] is None and state["detail_contribution"] is None  # only on request
    assert state["tokens"][3]["text"] == HOSTILE
    assert checksum(state["contributions"]) == checksum(hc.contributions)
    assert "3x4 heads" in repr(w)


def test_prediction_beyond_the_sequence_points_at_the_last_token():
    hc = make_head_result(position=7)  # the last token: what comes next is not in the sequence
    w = HeadGrid(hc)
    assert w.target_positions == [7] and w.query_positions == [7] and w.target_labels == [" sat"]
    assert np.isfinite(w.attention_stats[:2]).all()


def test_constructor_rejects_unknown_and_data_keywords_with_hints():
    hc = make_head_result()
    with pytest.raises(TypeError, match="Did you mean 'statistic'"):
        HeadGrid(hc, statistc="entropy")
    with pytest.raises(TypeError, match="unexpected keyword argument 'contributions'"):
        HeadGrid(hc, contributions=np.zeros((3, 4)))
    with pytest.raises(AttrWidgetsError, match="not both"):
        HeadGrid(hc, prompt="x")
    with pytest.raises(AttrWidgetsError, match="needs a HeadContributions"):
        HeadGrid()
    with pytest.raises(AttrWidgetsError, match="expects a HeadContributions, got dict"):
        HeadGrid({"contributions": 1})
    with pytest.raises(AttrWidgetsError, match="model=<ModelHandle> and prompt"):
        HeadGrid(model=object())
    with pytest.raises(traitlets.TraitError, match="statistic"):
        HeadGrid(hc, statistic="variance")
    w = HeadGrid(hc, statistic="entropy", selected_position=2)
    assert w.statistic == "entropy" and w.selected_position == 2
    for name, bad in (("selected_layer", 3), ("selected_head", 4), ("selected_position", 8), ("selected_target", 1)):
        with pytest.raises(traitlets.TraitError, match=name):
            setattr(w, name, bad)


def test_thumbnails_max_pool_long_sequences():
    a = np.zeros((1, 2, 50, 50), np.float32)
    a[0, 0, 49, 0] = 1.0  # one sharp weight in the last query bin
    a[0, 1] = 0.02
    t = thumbnails(a)
    assert t.shape == (1, 2, 24, 24)
    assert t[0, 0, 23, 0] == 1.0 and t[0, 0].sum() == 1.0  # kept, not averaged away
    np.testing.assert_array_equal(t[0, 1], np.float32(0.02))


def test_attention_statistics_at_the_query_of_the_selected_target():
    hc = make_head_result(position=4)
    w = HeadGrid(hc)
    rows = hc.attention[:, :, 4, :].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(np.where(rows > 0, rows * np.log(rows), 0.0), axis=-1)
    np.testing.assert_allclose(w.attention_stats[0], entropy, rtol=1e-5)
    np.testing.assert_allclose(w.attention_stats[1], rows.max(-1), rtol=1e-6)
    assert np.isnan(w.attention_stats[2]).all()  # no source selected
    w.selected_position = 3
    np.testing.assert_allclose(w.attention_stats[2], rows[..., 3], rtol=1e-6)
    assert (w.attention_stats[0, :, 0] == 0).all()  # head 0 is one-hot (previous token): entropy 0, not -0
    w.selected_target = -1
    assert np.isnan(w.attention_stats).all()
    assert np.isnan(attention_stats(None, 0, 0, 2, 2)).all()


def test_detail_only_on_request_and_only_the_pattern_of_a_new_head(monkeypatch):
    hc = make_head_result(position=4)
    w = HeadGrid(hc)
    sent = []
    monkeypatch.setattr(w, "_send", lambda msg, buffers=None: sent.append(msg["state"]))
    w.set_state({"selected_layer": 1, "selected_head": 2})  # a click in the view: one message
    state, dtypes = wire(w)
    assert w.detail_key == [1, 2, 0]
    np.testing.assert_allclose(state["detail_attention"], hc.attention[1, 2], atol=1e-3)
    np.testing.assert_array_equal(state["detail_contribution"], hc.per_source[1, 2])
    assert dtypes["detail_attention"] == "float16" and dtypes["detail_contribution"] == "float32"
    assert sum("detail_attention" in s for s in sent) == 1
    sent.clear()
    w.selected_position = 1  # statistics change; the open head's pattern is not resent
    assert not any("detail_attention" in s for s in sent)
    w.selected_head = -1  # Escape / close button
    assert w.detail_attention is None and w.detail_contribution is None and w.detail_key == []


def test_attention_mode_has_no_contributions():
    w = HeadGrid(make_head_result(), mode="attention")
    assert w.statistic == "entropy"  # the default where contribution is unavailable
    assert np.isnan(w.contributions).all() and w.target_logit is None
    w.selected_layer, w.selected_head = 0, 1
    assert w.detail_attention is not None and w.detail_contribution is None
    assert chart_data(w)["title"].startswith("contributions need mode='depass'")
    w.mode = "depass"
    assert np.isfinite(w.contributions).all() and w.detail_contribution is not None


def test_chart_follows_the_selection():
    s = FakeHeadSession()
    w = HeadGrid(session=s).wait(10)
    fig = w.chart()
    bars = fig.marks[0]
    np.testing.assert_allclose(bars.y, expected_contributions(0).sum(1), rtol=1e-6)
    assert list(bars.x) == ["0", "1", "2"] and "target #0" in fig.title
    w.selected_target = 2
    w.wait(10)
    np.testing.assert_allclose(bars.y, expected_contributions(2).sum(1), rtol=1e-6)
    w.selected_layer, w.selected_head = 1, 3
    assert list(bars.x) == ["#0 ' sat'", "#2 ' mat'"]  # the rows computed so far
    np.testing.assert_allclose(bars.y, [expected_contributions(r)[1, 3] for r in (0, 2)], rtol=1e-6)
    assert fig.title == "layer 1 head 3: contribution to each target"
    w.close()


# -- live, fake session ------------------------------------------------------------------------------------
def test_live_selection_recomputes_only_that_row_and_caches():
    s = FakeHeadSession()
    w = HeadGrid(session=s).wait(10)
    assert s.calls == [0] and w.busy is False and w.error == ""
    w.set_state({"selected_target": 2})  # as sent by a click on a generated token
    w.wait(10)
    state, _ = wire(w)
    np.testing.assert_array_equal(state["contributions"], expected_contributions(2))
    assert w.result.position == 6 and w.llm_id == "fake-heads"
    w.selected_target = 0  # cached: nothing recomputed
    w.wait(10)
    assert s.calls == [0, 2]
    np.testing.assert_array_equal(w.contributions, expected_contributions(0))
    assert sorted(w.computed_rows()) == [0, 2]


def test_last_click_wins_and_the_stale_run_is_cancelled():
    s = FakeHeadSession(delays={0: 2.0})
    w = HeadGrid(session=s)
    wait_until(lambda: s.calls == [0])
    assert w.busy and np.isnan(w.contributions).all()
    w.selected_target = 1
    w.selected_target = 2
    w.wait(10)
    assert s.calls == [0, 2] and s.cancelled == [0]  # row 1 was superseded before it started
    assert w.busy is False and w.error == ""
    np.testing.assert_array_equal(w.contributions, expected_contributions(2))


def test_a_stale_result_never_overwrites_a_newer_one():
    class Uncancellable(FakeHeadSession):
        def contributions(self, row, *, progress=False):
            return super().contributions(row, progress=progress)

    gate = threading.Event()
    s = Uncancellable(gate=gate)
    w = HeadGrid(session=s)
    wait_until(lambda: s.calls == [0])  # row 0 blocks on the gate
    w.selected_target = 1
    gate.set()
    w.wait(10)
    assert w.selected_target == 1
    np.testing.assert_array_equal(w.contributions, expected_contributions(1))
    w.selected_target = 0  # the stale row was cached for its own key
    w.wait(10)
    assert s.calls == [0, 1]
    np.testing.assert_array_equal(w.contributions, expected_contributions(0))


def test_errors_go_to_the_banner_and_the_widget_keeps_working():
    s = FakeHeadSession(fail={1: RuntimeError("CUDA out of memory")})
    w = HeadGrid(session=s).wait(10)
    w.selected_layer, w.selected_head = 0, 0
    w.selected_target = 1
    w.wait(10)
    assert w.error == "RuntimeError: CUDA out of memory" and w.busy is False
    assert np.isnan(w.contributions).all() and w.detail_contribution is None
    assert w.detail_attention is not None  # the pattern needs no DePass
    w.selected_target = 0
    w.wait(10)
    assert w.error == ""
    np.testing.assert_array_equal(w.contributions, expected_contributions(0))
    s.fail.clear()
    w.selected_target = 1  # retried, and now it works
    w.wait(10)
    assert w.error == "" and np.isfinite(w.contributions).all()


def test_attention_mode_never_runs_depass():
    s = FakeHeadSession()
    w = HeadGrid(session=s, mode="attention")
    w.selected_target = 2
    w.selected_position = 1
    w.wait(10)
    assert s.calls == [] and w.busy is False
    np.testing.assert_allclose(w.attention_stats[2], s.attention[:, :, 6, 1], rtol=1e-6)


def test_links_to_a_token_matrix_on_the_same_targets():
    tm = TokenMatrix(session=FakeSession(), method="saliency").wait(10)
    s = FakeHeadSession()
    hg = HeadGrid(session=s).wait(10)
    assert tm.target_positions == hg.target_positions
    link = ipywidgets.link((tm, "selected_target"), (hg, "selected_target"))
    tm.selected_target = 2
    hg.wait(10)
    assert hg.selected_target == 2 and s.calls == [0, 2]
    hg.selected_target = 1
    assert tm.selected_target == 1
    link.unlink()
    for w in (tm, hg):
        w.close()


def test_live_values_generic_cache():
    class Host(traitlets.HasTraits):
        busy = traitlets.Bool(False)
        error = traitlets.Unicode("")

    shown = []
    live = LiveValues(Host(), lambda k, v: shown.append((k, v)))
    live.request("a", lambda cancel: 1)
    live.wait(5)
    live.request("a", lambda cancel: pytest.fail("cached"))  # answered at once from the cache
    assert shown == [("a", 1), ("a", 1)]
    live.request("b", lambda cancel: 1 / 0)
    live.wait(5)
    assert live.widget.error == "ZeroDivisionError: division by zero" and live.cache == {"a": 1}
    live.close()


# -- export ----------------------------------------------------------------------------------------------
def _blocks(page: str) -> tuple[dict, dict]:
    get = lambda name: json.loads(
        re.search(rf'<script type="application/json" id="{name}">(.*?)</script>', page, re.DOTALL).group(1))
    return get("aw-state"), get("aw-extra")


@pytest.mark.usefixtures("built_bundle")
def test_to_html_head_grid_is_self_contained(tmp_path):
    s = FakeHeadSession()
    w = HeadGrid(session=s).wait(10)
    w.selected_target = 1
    w.wait(10)
    w.selected_layer, w.selected_head = 2, 3
    page = to_html(w, tmp_path / "heads.html")
    assert page.count("</script") == 4 and "<!--" not in page and "<img" not in page
    assert not re.search(r"https?://", page) and "import(url)" in page
    state, extra = _blocks(page)
    assert state["selected_target"] == 1 and state["selected_head"] == 3 and state["busy"] is False
    assert state["thumbnails"]["dtype"] == "float16" and state["tokens"][3]["text"] == HOSTILE
    assert sorted(extra["rows"]) == ["0", "1"]
    contrib = np.frombuffer(base64.b64decode(extra["rows"]["1"]["contributions"]["base64"]), "<f4")
    np.testing.assert_array_equal(contrib.reshape(N_LAYERS, N_HEADS), expected_contributions(1))
    assert extra["attention"]["shape"] == [N_LAYERS, N_HEADS, 8, 8] and extra["note"] == ""
    assert extra["query_attention"]["shape"] == [3, N_LAYERS, N_HEADS, 8]
    assert "layout" not in state and "tabbable" not in state
    w.close()


@pytest.mark.usefixtures("built_bundle")
def test_to_html_from_a_result_with_view_options_and_limits(monkeypatch):
    hc = make_head_result()
    state, extra = _blocks(to_html(hc, statistic="max_weight", selected_layer=1, selected_head=0))
    assert state["statistic"] == "max_weight" and state["detail_key"] == [1, 0, 0]
    with pytest.raises(AttrWidgetsError, match="unknown option"):
        to_html(hc, normalization="row")
    with pytest.raises(AttrWidgetsError, match="selected_head"):
        to_html(HeadGrid(hc), selected_head=7)
    import attrwidgets.export_html as export

    monkeypatch.setattr(export, "EMBED_ATTENTION_MAX", 10)
    state, extra = _blocks(to_html(hc))
    assert extra["attention"] is None and "does not embed" in extra["note"]


# -- live, real core session (tiny random model) -----------------------------------------------------------
def test_live_on_a_tiny_model_matches_the_session(tiny):
    w = HeadGrid(model=tiny, prompt=PROMPT, max_new_tokens=3).wait(120)
    assert w.error == "" and w.llm_id == "tiny-llama" and len(w.target_positions) == 3
    assert w.query_positions == [p - 1 for p in w.target_positions]
    w.selected_target = 2
    w.wait(120)
    expected = w.session.contributions(2)
    state, _ = wire(w)
    np.testing.assert_allclose(state["contributions"], expected.contributions, rtol=1e-5, atol=1e-7)
    # An exact split: heads + stream + bias add up to the real logit in every layer.
    total = expected.contributions.sum(1) + expected.stream + expected.bias
    np.testing.assert_allclose(total, expected.logit, rtol=1e-4, atol=1e-5)
    assert w.target_logit == pytest.approx(expected.logit, rel=1e-6)
    w.selected_layer, w.selected_head = 1, 2
    np.testing.assert_allclose(w.detail_attention, w.session.attention[1, 2])
    np.testing.assert_allclose(w.detail_contribution, expected.per_source[1, 2], rtol=1e-5, atol=1e-7)
    w.close()
    a = HeadGrid(model=tiny, prompt=PROMPT, max_new_tokens=2, mode="attention")
    assert a.busy is False and np.isnan(a.contributions).all() and np.isfinite(a.attention_stats[:2]).all()
    a.close()


def test_causal_fixture_is_a_valid_pattern():
    a = causal_attention(len(head_tokens()))
    np.testing.assert_allclose(a.sum(-1), 1.0, rtol=1e-5)
    assert np.triu(a[0, 1], 1).max() == 0


def test_a_live_grid_fills_in_layer_by_layer():
    """An uncomputed target shows its layers as they finish (the last first), never another row's numbers."""
    import attrwidgets as aw
    from attrwidgets.testing import tiny_handle

    grid = HeadGrid(model=tiny_handle("llama"), prompt="The capital of France is", max_new_tokens=3).wait(120)
    shown = []
    grid.observe(lambda change: shown.append(np.array(change["new"])), names="contributions")
    grid.selected_target = 2
    grid.wait(120)
    partial = [c for c in shown if np.isnan(c).any() and np.isfinite(c).any()]
    assert partial, "no layer was shown before the whole grid"
    assert all(np.isfinite(c[-1]).all() for c in partial)  # the last layer comes first
    final = aw.head_contributions(tiny_handle("llama"), [t["id"] for t in grid.tokens][: grid.query_positions[2] + 1],
                                  target=int(grid.tokens[grid.target_positions[2]]["id"]), progress=False)
    np.testing.assert_allclose(grid.contributions, final.contributions, rtol=1e-5, atol=1e-6)
    grid.close()
