"""Every live view under a burst of 100 selections: the last one wins (what is shown is what a fresh computation
of the last selection gives), the busy state ends, nothing is left in the error banner, and closing the view
leaves no worker thread behind (counted)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import attrwidgets as aw
from attrwidgets.testing import tiny_handle, tiny_masked_lm
from attrwidgets.widgets.token_matrix import LIVE_REFINEMENT

N = 100
PROMPT = "The capital of France is"


def _workers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("attrwidgets") and t.is_alive()}


def _burst(view, trait: str, values: list) -> None:
    for value in values:
        setattr(view, trait, value)


def _token_matrix():
    handle = tiny_handle("llama")
    view = aw.TokenMatrix(model=handle, prompt=PROMPT, method="integrated_gradients", n_steps=4, max_new_tokens=4)
    _burst(view, "selected_target", [k % 4 for k in range(N - 1)] + [2])
    view.wait(300)
    expected = aw.attribute(handle, PROMPT, method="integrated_gradients", n_steps=4, max_new_tokens=4,
                            progress=False, **LIVE_REFINEMENT)
    assert view.selected_target == 2
    np.testing.assert_allclose(view.result.scores[2], expected.scores[2], rtol=1e-4, atol=1e-6)
    return view


def _head_grid():
    view = aw.HeadGrid(model=tiny_handle("llama"), prompt=PROMPT, max_new_tokens=3).wait(120)
    _burst(view, "selected_target", [k % 3 for k in range(N - 1)] + [1])
    view.wait(300)
    assert view.selected_target == 1
    np.testing.assert_allclose(view.contributions, view.session.contributions(1).contributions, rtol=1e-5,
                               atol=1e-7)
    return view


def _layer_flow():
    view = aw.LayerFlow(model=tiny_handle("llama"), prompt="the cat sat on the mat", n_steps=4, layers=[1]).wait(120)
    _burst(view, "selected_target", [1 + k % 4 for k in range(N - 1)] + [3])
    view.wait(300)
    assert view.selected_target == 3
    j = view.target_position
    np.testing.assert_allclose(np.abs(view.shares[0]), view.result.shares("layer", 1, j), rtol=1e-5, atol=1e-7)
    return view


def _diffusion_timeline():
    model = tiny_masked_lm(seed=0)
    view = aw.DiffusionTimeline(model=model, prompt="the cat", layer="block 0", gen_length=4, denoising_steps=2,
                                n_steps=4).wait(120)
    layers = ["block 1", "block 0", "embeddings", "block 1 attn"]
    _burst(view, "layer", [layers[k % 4] for k in range(N - 1)] + ["block 1"])
    view.wait(300)
    expected = aw.dlig(model, "the cat", layer="block 1", gen_length=4, denoising_steps=2, n_steps=4, progress=False)
    assert view.shown_layer == "block 1"
    np.testing.assert_allclose(view.scores, expected.scores, rtol=1e-4, atol=1e-6)
    return view


def _graph_view():
    graph = aw.attribution_graph(tiny_handle("llama"), PROMPT, progress=False)
    view = aw.GraphView(graph).wait(120)
    _burst(view, "node_threshold", [0.5 + 0.4 * (k % 5) / 4 for k in range(N - 1)] + [0.6])
    view.wait(300)
    fresh = aw.GraphView(graph, node_threshold=0.6).wait(60)
    assert view.node_threshold == 0.6 and list(view.node_ids) == list(fresh.node_ids)
    fresh.close()
    targets = [" Paris", " the", " is", " of"]
    _burst(view, "target", [targets[k % 4] for k in range(N - 1)] + [" of"])
    view.wait(300)
    assert view.shown_target == '" of"'  # the rebuilt graph answers the last target
    return view


VIEWS = {"TokenMatrix": _token_matrix, "HeadGrid": _head_grid, "LayerFlow": _layer_flow,
         "DiffusionTimeline": _diffusion_timeline, "GraphView": _graph_view}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_a_burst_of_100_selections_ends_on_the_last_and_leaks_no_thread(name):
    before = _workers()
    view = VIEWS[name]()
    assert not view.busy and view.error == "", (name, view.error)
    view.close()
    deadline = time.monotonic() + 20
    while _workers() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (_workers() - before), [t.name for t in _workers() - before]


def _interrupt_main_after(seconds: float) -> threading.Timer:
    """What Jupyter's interrupt button does: SIGINT to the kernel's main thread (a real signal, which also
    breaks a blocking wait; _thread.interrupt_main would only be seen once the wait returns)."""
    import signal

    timer = threading.Timer(seconds, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.parametrize("how", ["cancel", "KeyboardInterrupt"])
def test_stopping_mid_computation_keeps_finished_rows_and_the_next_click_computes(how):
    """view.cancel(), or a kernel interrupt while the kernel waits on the view: the running row stops (the
    session sees its cancel event), the rows finished before stay, the view is not busy and shows no error, and
    the next click computes."""
    from tests.widgets.support import FakeSession

    session = FakeSession(delays={("integrated_gradients", 1): 30.0})
    view = aw.TokenMatrix(session=session, method="integrated_gradients", n_steps=4).wait(10)
    finished = view.result.scores[0].copy()
    assert np.isfinite(finished).any()
    view.selected_target = 1  # a 30 s row
    time.sleep(0.2)
    assert view.busy
    if how == "cancel":
        view.cancel()
    else:
        _interrupt_main_after(0.2)
        with pytest.raises(KeyboardInterrupt):
            view.wait(20)
    view.wait(10)
    assert session.cancelled == [("integrated_gradients", (1,))]  # stopped, not run to the end
    assert not view.busy and view.error == ""
    np.testing.assert_array_equal(view.result.scores[0], finished)  # nothing finished is lost
    assert np.isnan(view.result.scores[1]).all()
    view.selected_target = 2  # the next click computes
    view.wait(10)
    assert np.isfinite(view.result.scores[2]).any() and view.error == ""
    session.delays.clear()
    view.selected_target = 1  # and the cancelled row computes again when asked
    view.wait(10)
    assert np.isfinite(view.result.scores[1]).any()
    view.close()


def test_two_live_views_on_one_model_at_once_give_each_ones_numbers(monkeypatch):
    """Two views computing on one model at the same time (two worker threads) show what each computes alone,
    leave no gradient on the model's parameters and never toggle their requires_grad flags (frozen once, at
    load)."""
    handle = tiny_handle("qwen2")
    toggles = []
    original = torch.nn.Parameter.requires_grad_

    def spy(self, requires_grad=True):
        toggles.append(requires_grad)
        return original(self, requires_grad)

    monkeypatch.setattr(torch.nn.Parameter, "requires_grad_", spy)
    kwargs = {"method": "integrated_gradients", "n_steps": 8, "max_new_tokens": 3}
    alone = [aw.attribute(handle, p, progress=False, **kwargs, **LIVE_REFINEMENT) for p in (PROMPT, "one two three four")]
    views = [aw.TokenMatrix(model=handle, prompt=p, **kwargs) for p in (PROMPT, "one two three four")]
    for _ in range(3):
        for view in views:  # both workers busy at once
            view.selected_target = (view.selected_target + 1) % 3
    for view, expected in zip(views, alone):
        for row in range(3):
            view.selected_target = row
            view.wait(120)
        np.testing.assert_allclose(view.result.scores, expected.scores, rtol=1e-4, atol=1e-6)
        view.close()
    assert all(p.grad is None for p in handle.model.parameters())
    assert not any(p.requires_grad for p in handle.model.parameters()) and toggles == []


def test_bad_input_in_a_live_view_shows_in_the_view_and_loses_nothing():
    """An unknown method, layer, baseline or target typed into a view: the error is shown in the view, what it
    showed stays, and the next valid selection computes and clears the error. Values that a trait can check
    (the LayerFlow's baselines; the HeadGrid takes only enumerated choices and indices) are refused at the
    boundary instead, and the view keeps working."""
    handle = tiny_handle("llama")
    tm = aw.TokenMatrix(model=handle, prompt=PROMPT, method="integrated_gradients", n_steps=4, max_new_tokens=3)
    tm.wait(120)
    shown = tm.result.scores.copy()
    tm.method = "integrated_gradient"
    assert "Unknown method 'integrated_gradient'" in tm.error
    tm.method = "integrated_gradients"
    tm.selected_target = 2
    tm.wait(120)
    assert tm.error == "" and np.isfinite(tm.result.scores[2]).any()
    np.testing.assert_array_equal(tm.result.scores[0], shown[0])  # the row computed before is kept
    tm.close()

    dt = aw.DiffusionTimeline(model=tiny_masked_lm(seed=0), prompt="the cat", layer="block 0", gen_length=4,
                              denoising_steps=2, n_steps=4).wait(120)
    before = dt.scores.copy()
    dt.layer = "block 9"
    dt.wait(120)
    assert "out of range" in dt.error and dt.shown_layer == "block 0"
    np.testing.assert_array_equal(dt.scores, before)
    dt.layer = "block 1"
    dt.wait(120)
    assert dt.error == "" and dt.shown_layer == "block 1"
    dt.close()

    lf = aw.LayerFlow(model=handle, prompt="the cat sat on the mat", n_steps=4, layers=[1]).wait(120)
    shares = np.array(lf.shares)
    import traitlets

    with pytest.raises(traitlets.TraitError, match="baseline_layer must be one of zero"):
        lf.baseline_layer = "mean"  # refused at the boundary: the view keeps its value and what it shows
    assert lf.baseline_layer == "self_input_token" and lf.error == ""
    np.testing.assert_array_equal(np.array(lf.shares), shares)
    lf.baseline_layer = "zero"
    lf.wait(120)
    assert lf.error == "" and not np.allclose(np.array(lf.shares), shares)
    lf.close()

    graph = aw.attribution_graph(handle, PROMPT, progress=False)
    gv = aw.GraphView(graph).wait(120)
    nodes = list(gv.node_ids)
    gv.target = " capital of"  # two tokens: not a target
    gv.wait(120)
    assert "is 2 tokens" in gv.error and "give a single token" in gv.error, gv.error
    assert list(gv.node_ids) == nodes
    gv.target = " the"
    gv.wait(120)
    assert gv.error == "" and gv.shown_target == '" the"'
    gv.close()
