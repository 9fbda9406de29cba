"""LayerFlow: static construction, traits and their wire form, the four routes, baselines and heads,
completeness flags, linking with HeadGrid, export (and the page's own arithmetic, run in node); live selection
-> compute with a fake LigSession (last request wins, errors, nothing lost) and with tiny real models."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import ipywidgets
import numpy as np
import pytest
import traitlets
from ipywidgets.widgets.widget import _put_buffers, _remove_buffers

from attrwidgets.core.lig import LigSession, lig
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.export_html import to_html
from attrwidgets.widgets.flow_rows import flow_row, signed_shares
from attrwidgets.widgets.head_grid import HeadGrid
from attrwidgets.widgets.layer_flow import LayerFlow
from attrwidgets.widgets.serialization import deserialize_tensor

from .flow_support import FLAGGED, N_HEADS, FakeLigSession, make_flow_result
from .head_support import make_head_result
from .support import HOSTILE, wait_until

TENSORS = ("values", "shares", "head_values", "completeness_error")
ROOT = Path(__file__).resolve().parents[2]
TEXT = "the cat sat on the mat"


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


def per_head(u: np.ndarray) -> np.ndarray:
    return u.reshape(N_HEADS, -1).sum(-1)


# -- static --------------------------------------------------------------------------------------------------
def test_static_traits_and_wire_form():
    r = make_flow_result()
    w = LayerFlow(r)
    state = wire(w)
    assert not w.can_compute and w.session is None and w.result is r
    assert (w.n_layers, w.n_heads, w.layers, w.route) == (3, 4, [0, 1, 2], "layer")
    assert w.target_positions == list(range(6)) and w.selected_target == 5  # the last computed target
    assert state["tokens"][3]["text"] == HOSTILE
    expected = np.stack([r.columns[("layer", "self_input_token", layer)].scores[5] for layer in range(3)])
    np.testing.assert_array_equal(state["values"], expected)
    np.testing.assert_allclose(state["shares"], expected / np.abs(expected).sum(1, keepdims=True), rtol=1e-6)
    for layer in range(3):
        np.testing.assert_allclose(np.abs(state["shares"][layer]), r.shares("layer", layer, 5), rtol=1e-6)
    assert state["head_values"] is None and state["shares"][:, 5].all()
    np.testing.assert_allclose(state["completeness_error"], [0.001, 0.002, 0.05])
    assert state["flag_error"] == 0.02 and state["baseline_choices"]["mlp"] == ["zero", "att_itb_a0"]
    assert state["computed_baselines"]["att"] == ["itb_map_ratio", "self_input_token"]
    assert "static" in repr(w)


def test_routes_heads_and_baselines_match_the_result():
    r = make_flow_result()
    w = LayerFlow(r, selected_target=3)
    w.route = "att"
    z2u = np.stack([r.z2u[layer][3] for layer in range(3)])  # (L, H, T)
    np.testing.assert_allclose(w.values, z2u.sum(1), rtol=1e-6)  # no head: the sum over heads
    np.testing.assert_allclose(w.head_values, z2u.sum(2), rtol=1e-6)
    np.testing.assert_allclose(w.completeness_error, [0.001, 0.002, 0.003])
    w.selected_head = 2
    np.testing.assert_array_equal(w.values, z2u[:, 2])
    np.testing.assert_allclose(np.abs(w.shares[1]), r.shares("att", 1, 3, head=2), rtol=1e-6)
    w.route = "mlp"
    for layer in range(3):
        np.testing.assert_allclose(w.head_values[layer], r.mlp_per_head(layer)[3], rtol=1e-6)
        assert w.values[layer, 3] == pytest.approx(r.u2z[layer][3].sum(), rel=1e-6)
    assert np.count_nonzero(w.values) == 3 and (w.shares[:, 3] == 1).all()  # position-wise: only u_j itself
    w.route = "composed"
    composed = np.stack([r.composed(layer)[3] for layer in range(3)])
    np.testing.assert_allclose(w.values, composed, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(w.head_values.sum(1), composed.sum(1), rtol=1e-5)
    w.route, w.selected_target, w.selected_head = "att", 5, -1
    w.baseline_att = "itb_map_ratio"  # computed at layer 1 only
    assert np.isnan(w.values[[0, 2]]).all() and np.isfinite(w.values[1]).all()
    np.testing.assert_allclose(w.values[1], r.columns[("att", "itb_map_ratio", 1)].scores[5].sum(0), rtol=1e-6)
    assert w.error == ""


def test_uncomputed_target_is_nan_and_flags_are_sent():
    w = LayerFlow(make_flow_result())
    w.selected_target = 1  # never computed: NaN rows, no error, no computation
    for k in TENSORS[:2]:
        assert np.isnan(getattr(w, k)).all()
    assert np.isnan(w.completeness_error).all() and w.error == "" and not w.busy
    w.selected_target = FLAGGED[1]
    assert w.completeness_error[FLAGGED[0]] > w.flag_error


def test_flow_row_and_shares_helpers():
    r = make_flow_result()
    base = {"layer": "self_input_token", "att": "self_input_token", "mlp": "zero"}
    assert flow_row(r, "layer", base, 0, 1, -1) is None and flow_row(r, "composed", base, 0, 0, -1) is None
    values, heads, err = flow_row(r, "composed", base, 0, 5, -1)
    assert values.shape == (6,) and heads.shape == (N_HEADS,) and err == pytest.approx(0.001)
    out = signed_shares(np.array([[1.0, -3.0, 0.0], [np.nan] * 3, [0.0] * 3]))
    np.testing.assert_allclose(out[0], [0.25, -0.75, 0])
    assert np.isnan(out[1]).all() and (out[2] == 0).all()


def test_constructor_and_validation_errors_have_hints():
    r = make_flow_result()
    with pytest.raises(TypeError, match="Did you mean 'threshold'"):
        LayerFlow(r, treshold=0.1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'values'"):
        LayerFlow(r, values=np.zeros((3, 6)))
    with pytest.raises(AttrWidgetsError, match="needs a LayerAttribution"):
        LayerFlow()
    with pytest.raises(AttrWidgetsError, match=r"expects a LayerAttribution \(aw.lig\), got dict"):
        LayerFlow({"columns": {}})
    with pytest.raises(AttrWidgetsError, match="without a model"):
        LayerFlow(r, n_steps=8)
    with pytest.raises(AttrWidgetsError, match="prompt="):
        LayerFlow(model=object())
    with pytest.raises(traitlets.TraitError, match="baseline_mlp must be one of zero, att_itb_a0"):
        LayerFlow(r, baseline_mlp="self_input_token")
    w = LayerFlow(r, layers=[2, 0], threshold=0.2, route="att")
    assert w.layers == [0, 2] and w.values.shape == (2, 6)
    for name, bad in (("selected_layer", 3), ("selected_head", 4), ("selected_position", 6), ("selected_target", 6),
                      ("layers", [3]), ("layers", []), ("route", "z2z"), ("threshold", 1.5),
                      ("target_positions", [0, 0])):
        with pytest.raises(traitlets.TraitError):
            setattr(w, name, bad)


def test_links_with_a_head_grid_by_the_shared_names():
    grid = HeadGrid(make_head_result())  # 3 layers x 4 heads, one target row
    flow = LayerFlow(make_flow_result(), target_positions=[5])  # the same single target row
    links = [ipywidgets.link((flow, k), (grid, k)) for k in ("selected_layer", "selected_head", "selected_target")]
    flow.selected_layer, flow.selected_head = 2, 1
    assert (grid.selected_layer, grid.selected_head) == (2, 1) and grid.detail_key == [2, 1, 0]
    grid.selected_head = 3
    assert flow.selected_head == 3
    assert flow.selected_target == grid.selected_target == 0 and flow.target_position == 5
    for link in links:
        link.unlink()
    grid.close()
    flow.close()


# -- live with a fake session ----------------------------------------------------------------------------------
def test_live_computes_only_the_missing_layers_clicked_row_first():
    s = FakeLigSession(result=make_flow_result(targets=[5], layers=(1,), extra=False))
    w = LayerFlow(session=s).wait(10)
    assert w.can_compute and w.selected_target == 5
    assert [c[:3] for c in s.calls] == [("layer", 0, 5), ("layer", 2, 5)]  # layer 1 was computed already
    assert np.isfinite(w.values).all()
    s.calls.clear()
    with w.hold_sync():
        w.selected_layer = 2
        w.selected_target = 2
    w.wait(10)
    assert [c[:3] for c in s.calls] == [("layer", 2, 2), ("layer", 0, 2), ("layer", 1, 2)]
    s.calls.clear()
    w.route = "composed"
    w.wait(10)
    assert {c[0] for c in s.calls} == {"att", "mlp"} and len(s.calls) == 6
    assert all(c[3] in ("self_input_token", "zero") for c in s.calls)  # the view's baselines, passed explicitly
    np.testing.assert_allclose(w.values, np.stack([s.result.composed(layer)[2] for layer in range(3)]), rtol=1e-5)
    s.calls.clear()
    w.baseline_mlp = "att_itb_a0"
    w.wait(10)
    assert {c[3] for c in s.calls if c[0] == "mlp"} == {"att_itb_a0"} and not [c for c in s.calls if c[0] == "att"]
    w.close()


def test_last_request_wins_and_nothing_computed_is_lost():
    s = FakeLigSession(delays={("layer", 2, 1): 5.0})
    w = LayerFlow(session=s, selected_target=0).wait(10)
    w.selected_target = 1  # layers 0 and 1 are quick, layer 2 slow
    wait_until(lambda: ("layer", 2, 1, "self_input_token") in s.calls)
    assert w.busy
    w.selected_target = 4  # supersedes: the slow column is cancelled
    w.wait(10)
    assert ("layer", 2, 1) in s.cancelled and not w.busy and w.error == ""
    assert w.target_position == 4 and np.isfinite(w.values).all()
    done = [s.result.columns[("layer", "self_input_token", layer)].has(1) for layer in range(3)]
    assert done == [True, True, False]  # what target 1 finished before the cancel is kept
    s.calls.clear()
    s.delays.clear()
    w.selected_target = 1
    w.wait(10)
    assert [c[:3] for c in s.calls] == [("layer", 2, 1)]  # only the column that was cancelled
    w.close()


def test_a_failure_goes_to_the_banner_and_keeps_the_rest():
    s = FakeLigSession(fail={("layer", 1, 2): AttrWidgetsError("out of memory at layer 1")})
    w = LayerFlow(session=s, selected_target=0).wait(10)
    w.selected_layer = 0
    w.selected_target = 2
    w.wait(10)
    assert w.error == "out of memory at layer 1" and not w.busy
    assert np.isfinite(w.values[0]).all() and np.isnan(w.values[1]).all()  # layer 0 was computed first
    w.selected_target = 0  # cached: shown at once, the banner cleared
    assert w.error == "" and np.isfinite(w.values).all()
    w.close()


def test_a_stale_result_never_overwrites_a_newer_selection():
    gate = threading.Event()
    s = FakeLigSession(gate=gate)
    w = LayerFlow(session=s, selected_target=0, layers=[0])
    w.selected_target = 3
    gate.set()
    w.wait(10)
    assert w.target_position == 3
    np.testing.assert_array_equal(w.values[0], s.result.columns[("layer", "self_input_token", 0)].scores[3])
    w.close()


# -- live with tiny real models ------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["llama", "gpt2", "bert"])
def test_live_on_tiny_models(arch):
    from attrwidgets.testing import tiny_handle

    w = LayerFlow(model=tiny_handle(arch), prompt=TEXT, n_steps=4, layers=[1]).wait(60)
    assert w.error == "" and w.can_compute and isinstance(w.session, LigSession)
    j = w.target_position
    np.testing.assert_allclose(np.abs(w.shares[0]), w.result.shares("layer", 1, j), rtol=1e-5, atol=1e-7)
    assert np.isfinite(w.completeness_error).all()
    w.route = "composed"
    w.selected_target = 1
    w.wait(60)
    assert w.error == ""
    np.testing.assert_allclose(w.values[0], w.result.composed(1)[1], rtol=1e-4, atol=1e-7)
    w.close()


def test_continuing_a_result_with_a_model_recomputes_nothing_it_has(tiny):
    r = lig(tiny, TEXT, n_steps=4, layers=[0], target_tokens=[2], granularity="layer")
    before = r.columns[("layer", "self_input_token", 0)].scores.copy()
    w = LayerFlow(r, model=tiny).wait(60)  # the same handle: the result's own session is reused
    assert w.session is r.session and w.target_position == 2
    np.testing.assert_array_equal(w.values[0], before[2])
    loaded = make_flow_result()  # a result of another model's tokens cannot continue with this model
    with pytest.raises(AttrWidgetsError, match="tokens or its model sizes"):
        LayerFlow(loaded, model=tiny)
    w.close()


# -- export ------------------------------------------------------------------------------------------------------
def _embedded(page: str, block: str):
    found = re.search(rf'<script type="application/json" id="{block}">(.*?)</script>', page, re.DOTALL)
    return json.loads(found.group(1))


def test_to_html_embeds_only_computed_columns_and_escapes_tokens(tmp_path):
    r = make_flow_result()
    page = to_html(r, tmp_path / "flow.html", route="att", selected_head=1)
    assert (tmp_path / "flow.html").read_text(encoding="utf-8") == page
    assert HOSTILE not in page and "cdn" not in page.lower()
    state, extra = _embedded(page, "aw-state"), _embedded(page, "aw-extra")
    assert state["route"] == "att" and state["selected_head"] == 1 and not state["can_compute"]
    keys = {(c["route"], c["baseline"], c["layer"]): c for c in extra["columns"]}
    assert len(keys) == 10 and keys[("att", "itb_map_ratio", 1)]["targets"] == [5]
    assert keys[("layer", "self_input_token", 0)]["targets"] == [3, 5]
    mlp = keys[("mlp", "zero", 2)]
    per = np.frombuffer(base64.b64decode(mlp["per_head"]["base64"]), "<f4").reshape(2, N_HEADS)
    np.testing.assert_allclose(per[1], per_head(r.u2z[2][5]), rtol=1e-6)
    w = LayerFlow(r, route="mlp", selected_target=3)
    assert _embedded(to_html(w), "aw-state")["route"] == "mlp"
    with pytest.raises(AttrWidgetsError, match="accepts"):
        to_html(r, statistic="entropy")
    with pytest.raises(AttrWidgetsError, match="selected_head"):
        to_html(w, selected_head=9)
    w.close()


NODE_ENTRY = """
import { readFileSync } from "node:fs";
import { standalone } from "%(root)s/js/lib/flow_local";
const { state, extra, steps } = JSON.parse(readFileSync(process.argv[2], "utf8"));
const decode = (v) => {
  if (Array.isArray(v)) return v.map(decode);
  if (!v || typeof v !== "object") return v;
  if (typeof v.base64 === "string") return { buffer: new DataView(Uint8Array.from(Buffer.from(v.base64, "base64")).buffer), dtype: v.dtype, shape: v.shape };
  for (const k of Object.keys(v)) v[k] = decode(v[k]);
  return v;
};
const s = decode(state);
const listeners = new Map();
const model = { get: (k) => s[k], set: (k, v) => { s[k] = v; (listeners.get("change:" + k) || []).forEach((f) => f()); },
  on: (e, f) => listeners.set(e, [...(listeners.get(e) || []), f]), off: () => {}, save_changes: () => {} };
standalone(model, decode(extra));
const arr = (t) => (t ? Array.from(new Float32Array(t.buffer.buffer, t.buffer.byteOffset, t.buffer.byteLength / 4), (x) => (Number.isNaN(x) ? null : x)) : null);
const out = steps.map(([k, v]) => { model.set(k, v); return ["values", "shares", "head_values", "completeness_error"].map((n) => arr(s[n])); });
console.log(JSON.stringify(out));
"""
STEPS = [("route", "att"), ("selected_head", 2), ("selected_target", 3), ("route", "mlp"), ("route", "composed"),
         ("selected_target", 1), ("selected_target", 5), ("route", "layer"), ("layers", [0, 2]),
         ("route", "att"), ("selected_head", -1), ("baseline_att", "itb_map_ratio")]


def test_the_standalone_page_computes_what_the_kernel_does(tmp_path):
    """js/lib/flow_local.ts (the page's stand-in for the kernel), run in node, against LayerFlow's traits."""
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    if shutil.which("node") is None or not esbuild.exists():
        pytest.skip("needs node and `npm ci` (node_modules/.bin/esbuild) to run the front-end code")
    r = make_flow_result()
    page = to_html(r)
    (tmp_path / "entry.js").write_text(NODE_ENTRY % {"root": ROOT.as_posix()})
    (tmp_path / "in.json").write_text(json.dumps({"state": _embedded(page, "aw-state"),
                                                   "extra": _embedded(page, "aw-extra"), "steps": STEPS}))
    subprocess.run([str(esbuild), str(tmp_path / "entry.js"), "--bundle", "--platform=node", "--format=esm",
                    f"--outfile={tmp_path / 'entry.mjs'}"], check=True, capture_output=True)
    out = json.loads(subprocess.run(["node", str(tmp_path / "entry.mjs"), str(tmp_path / "in.json")], check=True,
                                    capture_output=True, text=True).stdout)
    w = LayerFlow(r)
    for (name, value), got in zip(STEPS, out, strict=True):
        setattr(w, name, value)
        for trait, js in zip(TENSORS, got, strict=True):
            want = getattr(w, trait)
            if want is None or js is None:
                assert want is None and js is None, (name, value, trait)
                continue
            js = np.array([np.nan if v is None else v for v in js], np.float32).reshape(want.shape)
            np.testing.assert_allclose(js, want, rtol=1e-5, atol=1e-7, err_msg=f"{trait} after {name}={value}")
    w.close()
