"""DiffusionTimeline: static construction from hand-built DiffusionAttributions, traits and their wire form, the
row <-> step coupling, validation, export; live layer changes with a fake compute (injected with compute=:
last request wins, busy, errors kept beside the previous result, the cache) and once with aw.dlig on a tiny
masked LM."""

from __future__ import annotations

import inspect
import json
import threading
import time

import numpy as np
import pytest
import traitlets
from ipywidgets.widgets.widget import _put_buffers, _remove_buffers

from attrwidgets.core.dlig.result import DiffusionAttribution
from attrwidgets.core.tokens import Token
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.export_html import to_html
from attrwidgets.widgets.diffusion_timeline import DLIG_OPTIONS, FLAG_ERROR, DiffusionTimeline
from attrwidgets.widgets.serialization import deserialize_tensor

from .support import HOSTILE, SCRIPT_BREAKER, wait_until

TENSORS = ("masked", "scores", "signed_scores", "completeness_error")
MASK = 99
MASK_TEXT = "<mask>"  # looks like markup: must stay text
N_PROMPT = 3
# step -> positions it unmasks (two per step); rows follow this order
UNMASK = {0: [5, 7], 1: [3, 8], 2: [4, 6]}
FLAGGED_ROW = 1  # its completeness error is 5%
OPTIONS = {"n_steps": 8, "quadrature": "gauss_legendre", "objective": "logit", "per_dim": False, "aggregate": "l2",
           "tol": 0.005, "gen_length": 6, "steps": 3, "block_length": 6, "remasking": "low_confidence",
           "temperature": 0.0, "seed": 0, "baseline": "mask_prompt"}


def diffusion_tokens() -> list[Token]:
    texts = [("The", "The"), (HOSTILE, HOSTILE), ("Ġcat", " cat"), ("Ġsat", " sat"), (SCRIPT_BREAKER, SCRIPT_BREAKER),
             ("Ċ", "\n"), ("Ġon", " on"), (HOSTILE, HOSTILE), ("Ġmat", " mat")]
    return [Token(10 + p, piece, clean, "prompt" if p < N_PROMPT else "generated") for p, (piece, clean) in
            enumerate(texts)]


def make_diffusion_result(layer: str = "block 1", prompt: str = "The cat") -> DiffusionAttribution:
    """Nine positions (three prompt, six generated), three steps; scores depend on the layer, so a recompute shows."""
    tokens = diffusion_tokens()
    t = len(tokens)
    ids = np.array([tok.id for tok in tokens])
    states = np.tile(ids, (4, 1))
    rows = [(s, p) for s in sorted(UNMASK) for p in UNMASK[s]]
    for s in range(4):
        for step, p in rows:
            if step >= s:
                states[s, p] = MASK
    rng = np.random.default_rng(sum(map(ord, layer)))
    signed = rng.normal(size=(len(rows), t)).astype(np.float32)
    error = np.full(len(rows), 0.004, np.float32)
    error[FLAGGED_ROW] = 0.05
    return DiffusionAttribution(
        tokens=tokens, n_prompt=N_PROMPT, mask_token_id=MASK, states=states,
        row_step=np.array([s for s, _ in rows]), row_position=np.array([p for _, p in rows]),
        row_token=ids[[p for _, p in rows]], scores=np.abs(signed) * 2, signed_scores=signed,
        completeness_error=error, layer=layer, options=dict(OPTIONS), model_id="fake-diffusion", prompt=prompt,
        mask_text=MASK_TEXT)


class FakeCompute:
    """aw.dlig's contract (model, prompt, layer=..., options, cancel=, progress=) with a gate, delays and failures.
    layer None resolves to "block 1" (aw.dlig's default is the middle block); "block 9" does not exist."""

    def __init__(self, gate: threading.Event | None = None, delays: dict | None = None):
        self.calls: list[dict] = []
        self.cancelled: list[str] = []
        self.gate, self.delays = gate, delays or {}
        self.lock = threading.Lock()

    def __call__(self, model, prompt, *, layer=None, cancel=None, progress=True, **options):
        with self.lock:
            self.calls.append({"model": model, "prompt": prompt, "layer": layer, "progress": progress, **options})
        if self.gate is not None:
            self.gate.wait(10)
        deadline = time.monotonic() + self.delays.get(layer, 0.0)
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                self.cancelled.append(layer)
                raise RuntimeError("cancelled")
            time.sleep(0.005)
        if layer == "block 9":
            raise AttrWidgetsError("Layer 'block 9' is out of range: this model has 2 blocks (0..1).")
        return make_diffusion_result(layer or "block 1", prompt)


def wire(widget) -> dict:
    """The state as the browser receives it (JSON + binary buffers), tensors decoded."""
    state, paths, buffers = _remove_buffers(widget.get_state())
    assert all(isinstance(b, (memoryview, bytes, bytearray)) for b in buffers)
    _put_buffers(state, paths, buffers)
    for k in TENSORS:
        if state.get(k) is not None:
            assert state[k]["dtype"] == "float32"
        state[k] = deserialize_tensor(state.get(k))
    json.dumps({k: v for k, v in state.items() if k not in TENSORS}, allow_nan=False)  # strict JSON only
    return state


# -- static --------------------------------------------------------------------------------------------------
def test_static_traits_and_wire_form():
    r = make_diffusion_result()
    w = DiffusionTimeline(r)
    state = wire(w)
    assert w.result is r and not w.can_compute and w.error == ""
    assert state["tokens"][1]["clean"] == HOSTILE and state["mask_text"] == MASK_TEXT
    assert (state["n_prompt"], state["n_denoising_steps"]) == (3, 3)
    assert state["target_positions"] == [5, 7, 3, 8, 4, 6] and state["row_step"] == [0, 0, 1, 1, 2, 2]
    np.testing.assert_array_equal(state["masked"], (r.states == MASK).astype(np.float32))
    assert state["masked"].shape == (4, 9) and state["masked"][-1].sum() == 0 and state["masked"][0].sum() == 6
    np.testing.assert_array_equal(state["scores"], r.scores)
    np.testing.assert_array_equal(state["signed_scores"], r.signed_scores)
    np.testing.assert_array_equal(state["completeness_error"], r.completeness_error)
    assert (state["layer"], state["shown_layer"], state["layer_choices"]) == ("block 1", "block 1", ["block 1"])
    assert (w.selected_step, w.selected_target, w.selected_position) == (0, 0, -1)  # step 0 and its first token
    assert w.target_position == 5 and w.flag_error == FLAG_ERROR and state["llm_id"] == "fake-diffusion"
    assert "static" in repr(w) and "6 unmasked tokens" in repr(w)


def test_a_row_brings_its_step_and_a_step_its_first_row():
    w = DiffusionTimeline(make_diffusion_result())
    w.selected_target = 3  # position 8, unmasked at step 1
    assert (w.selected_step, w.target_position) == (1, 8)
    w.selected_step = 2
    assert w.selected_target == 4  # step 2's first row
    w.selected_step = 2
    w.selected_target = 5  # same step: the step stays
    assert w.selected_step == 2
    w.selected_target = -1  # no target: the step stays
    assert w.selected_step == 2
    w.selected_step = 0  # a step without a target selects its first row
    assert w.selected_target == 0
    w.selected_step = -1  # the final sequence: no target
    assert w.selected_target == -1
    with w.hold_trait_notifications():  # as a browser message sets both
        w.selected_step, w.selected_target = 1, 3
    assert (w.selected_step, w.selected_target) == (1, 3)


def test_constructor_selection_is_made_consistent():
    r = make_diffusion_result()
    assert DiffusionTimeline(r, selected_target=5).selected_step == 2
    w = DiffusionTimeline(r, selected_step=1, selected_position=2, heatmap="rows", score_kind="signed")
    assert (w.selected_target, w.selected_position, w.heatmap, w.score_kind) == (2, 2, "rows", "signed")
    assert DiffusionTimeline(r, selected_target=-1).selected_step == -1
    assert DiffusionTimeline(r, layer=1).layer == "block 1"  # an int is that block, as aw.dlig reads it


@pytest.mark.parametrize(("name", "value"), [("selected_target", 6), ("selected_position", 9), ("selected_step", 3),
                                             ("selected_step", -2)])
def test_selection_out_of_range_is_rejected(name, value):
    w = DiffusionTimeline(make_diffusion_result())
    with pytest.raises(traitlets.TraitError, match=name):
        setattr(w, name, value)


def test_bad_input_says_what_to_do():
    r = make_diffusion_result()
    with pytest.raises(TypeError, match="Did you mean 'heatmap'"):
        DiffusionTimeline(r, heat_map="rows")
    with pytest.raises(AttrWidgetsError, match="without a model"):
        DiffusionTimeline(r, gen_length=8)
    with pytest.raises(AttrWidgetsError, match="needs a DiffusionAttribution"):
        DiffusionTimeline()
    with pytest.raises(AttrWidgetsError, match="expects a DiffusionAttribution"):
        DiffusionTimeline(object())
    with pytest.raises(AttrWidgetsError, match="needs prompt="):
        DiffusionTimeline(model=object(), compute=FakeCompute())
    r.row_position[2] = 9
    with pytest.raises(AttrWidgetsError, match="row_position"):
        DiffusionTimeline(r)
    t = make_diffusion_result()
    t.options["baseline"] = "tensor"
    with pytest.raises(AttrWidgetsError, match="tensor baseline"):
        DiffusionTimeline(t, model=object(), compute=FakeCompute())


def test_static_layer_change_is_explained_and_the_data_kept():
    r = make_diffusion_result()
    w = DiffusionTimeline(r)
    w.layer = "block 0"
    assert "static" in w.error and "model=" in w.error
    assert w.shown_layer == "block 1" and np.array_equal(w.scores, r.scores)
    w.layer = "block 1"
    assert w.error == ""


def test_dlig_options_match_aw_dlig():
    from attrwidgets.core.dlig.diffusion import dlig

    params = inspect.signature(dlig).parameters
    own = {"model", "prompt_or_messages", "layer", "progress", "cancel"}
    assert set(DLIG_OPTIONS) == set(params) - own


def test_lazy_attribute():
    import attrwidgets as aw

    assert aw.DiffusionTimeline is DiffusionTimeline and "DiffusionTimeline" in aw.__all__


# -- live (a fake compute) -------------------------------------------------------------------------------------
def test_layer_change_recomputes_with_the_same_arguments():
    r, fake, model = make_diffusion_result(), FakeCompute(), object()
    w = DiffusionTimeline(r, model=model, compute=fake, n_steps=16)
    assert w.can_compute and fake.calls == []  # the result is the cache's first entry
    w.selected_target = 3
    w.selected_position = 4
    w.layer = "block 0"
    w.wait(10)
    assert len(fake.calls) == 1
    call = fake.calls[0]
    assert call["model"] is model and call["prompt"] == "The cat" and call["layer"] == "block 0"
    assert call["progress"] is False and call["n_steps"] == 16 and call["mask_token_id"] == MASK
    assert {k: call[k] for k in ("gen_length", "denoising_steps", "block_length", "remasking", "seed")} == {
        "gen_length": 6, "denoising_steps": 3, "block_length": 6, "remasking": "low_confidence", "seed": 0}
    assert "aggregate" not in call and "tol" not in call
    new = make_diffusion_result("block 0")
    assert (w.shown_layer, w.error, w.busy) == ("block 0", "", False)
    np.testing.assert_array_equal(w.scores, new.scores)
    assert (w.selected_target, w.selected_step, w.selected_position) == (3, 1, 4)  # same rows: selection kept
    w.layer = "block 1"  # cached: no compute
    assert w.shown_layer == "block 1" and len(fake.calls) == 1
    np.testing.assert_array_equal(w.scores, r.scores)
    w.close()


def test_live_from_a_prompt_shows_the_resolved_layer_and_applies_the_selection():
    fake = FakeCompute()
    w = DiffusionTimeline(model=object(), prompt="The cat", compute=fake, denoising_steps=3, selected_target=4)
    assert w.result is None or w.busy or w.shown_layer
    w.wait(10)
    assert [c["layer"] for c in fake.calls] == [None] and fake.calls[0]["denoising_steps"] == 3
    assert (w.layer, w.shown_layer, w.error) == ("block 1", "block 1", "")  # "" resolved: no second compute
    assert (w.selected_target, w.selected_step) == (4, 2)
    w.layer = ""
    w.wait(10)
    assert len(fake.calls) == 1  # "" is cached too
    w.layer = "  block   0 "  # spacing does not matter
    w.wait(10)
    assert w.shown_layer == "block 0" and [c["layer"] for c in fake.calls] == [None, "block 0"]
    w.layer = "block 1"  # the label written back earlier is an ordinary value again
    assert w.shown_layer == "block 1" and len(fake.calls) == 2
    w.close()


def test_last_request_wins_and_busy_shows():
    gate = threading.Event()
    fake = FakeCompute(gate=gate, delays={"block 0": 0.5})
    w = DiffusionTimeline(make_diffusion_result(), model=object(), compute=fake)
    w.layer = "block 0"
    wait_until(lambda: w.busy)
    w.layer = "embeddings"
    gate.set()
    w.wait(10)
    assert w.shown_layer == "embeddings" and w.layer == "embeddings" and w.busy is False
    np.testing.assert_array_equal(w.scores, make_diffusion_result("embeddings").scores)
    assert fake.cancelled in ([], ["block 0"])  # superseded: cancelled, or finished and only cached
    w.close()


def test_a_failure_shows_in_the_view_and_keeps_the_previous_result():
    r, fake = make_diffusion_result(), FakeCompute()
    w = DiffusionTimeline(r, model=object(), compute=fake)
    w.layer = "block 9"
    w.wait(10)
    assert "out of range" in w.error and w.shown_layer == "block 1" and w.layer == "block 9"
    np.testing.assert_array_equal(w.scores, r.scores)
    w.layer = "block 0"
    w.wait(10)
    assert w.error == "" and w.shown_layer == "block 0"
    w.close()


def test_a_custom_compute_may_take_its_own_keywords():
    def compute(model, prompt, *, layer=None, temperature_schedule="flat", cancel=None):
        return make_diffusion_result(layer or "block 1")

    w = DiffusionTimeline(model=object(), prompt="x", compute=compute, temperature_schedule="cosine").wait(10)
    assert w.shown_layer == "block 1"
    with pytest.raises(TypeError, match="Did you mean 'temperature_schedule'"):
        DiffusionTimeline(model=object(), prompt="x", compute=compute, temperature_schedul="cosine")
    w.close()


# -- export ------------------------------------------------------------------------------------------------
def test_to_html_of_a_result_and_of_a_widget(tmp_path, built_bundle):
    r = make_diffusion_result()
    page = to_html(r, tmp_path / "t.html", selected_step=2)
    assert "diffusion timeline" in page and "<img src=x" not in page and SCRIPT_BREAKER not in page
    state = json.loads(page.split('id="aw-state">')[1].split("</script>")[0])
    assert (state["selected_step"], state["selected_target"], state["can_compute"]) == (2, 4, False)
    assert state["scores"]["dtype"] == "float32" and "base64" in state["scores"]
    w = DiffusionTimeline(r, selected_target=3, heatmap="rows")
    state = json.loads(to_html(w).split('id="aw-state">')[1].split("</script>")[0])
    assert (state["selected_target"], state["selected_step"], state["heatmap"]) == (3, 1, "rows")
    state = json.loads(to_html(w, selected_step=2).split('id="aw-state">')[1].split("</script>")[0])
    assert (state["selected_target"], state["selected_step"]) == (4, 2)  # the step asked for, with its first row
    with pytest.raises(AttrWidgetsError, match="accepts"):
        to_html(r, heat_map="rows")
    with pytest.raises(AttrWidgetsError, match="selected_step"):
        to_html(r, selected_step=7)
    gate = threading.Event()
    live = DiffusionTimeline(model=object(), prompt="x", compute=FakeCompute(gate=gate))
    with pytest.raises(AttrWidgetsError, match="nothing to export"):
        to_html(live)
    gate.set()
    live.close()


# -- live with aw.dlig on a tiny masked LM ------------------------------------------------------------------
def test_live_with_dlig_on_a_tiny_masked_lm():
    from attrwidgets.testing import tiny_masked_lm

    w = DiffusionTimeline(model=tiny_masked_lm(seed=0), prompt="the cat", layer="block 0", gen_length=4, denoising_steps=2,
                          n_steps=4).wait(120)
    assert w.error == "" and w.shown_layer == "block 0" and w.n_denoising_steps == 2
    assert len(w.target_positions) == 4 and "block 1 attn" in w.layer_choices
    first = w.scores.copy()
    w.selected_target = 3
    w.layer = "block 1"
    w.wait(120)
    assert (w.error, w.shown_layer, w.selected_target, w.selected_step) == ("", "block 1", 3, w.row_step[3])
    assert w.scores.shape == first.shape and not np.allclose(w.scores, first)
    w.close()


def test_a_dream_layout_run_in_the_timeline():
    """aw.dlig on a tiny checkpoint in the published Dream layout (loaded without its remote code,
    tests/core/diffusion_layout_support.py), shown static and recomputed live at another layer."""
    import attrwidgets as aw
    from tests.core.diffusion_layout_support import loaded

    h = loaded("dream")
    r = aw.dlig(h, "the cat", layer="block 0", gen_length=4, denoising_steps=2, n_steps=4, progress=False)
    state = wire(DiffusionTimeline(r))
    assert state["mask_text"] == "<|mask|>" and (state["n_prompt"], state["n_denoising_steps"]) == (r.n_prompt, 2)
    assert sorted(state["target_positions"]) == list(range(r.n_prompt, r.n_prompt + 4))
    np.testing.assert_array_equal(state["masked"], (r.states == r.mask_token_id).astype(np.float32))
    assert state["masked"][0, r.n_prompt:].all() and not state["masked"][-1].any()
    np.testing.assert_array_equal(state["scores"], r.scores)
    assert np.abs(state["scores"]).max() > 0 and state["layer"] == "block 0"
    w = DiffusionTimeline(model=h, prompt="the cat", layer="block 0", gen_length=4, denoising_steps=2, n_steps=4).wait(120)
    assert w.error == "" and "block 1 mlp" in w.layer_choices
    np.testing.assert_allclose(w.scores, r.scores, rtol=1e-6, atol=1e-7)  # the same run, computed by the view
    w.layer = "block 1"
    w.wait(120)
    assert (w.error, w.shown_layer) == ("", "block 1") and not np.allclose(w.scores, r.scores)
    w.close()
