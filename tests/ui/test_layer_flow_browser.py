"""The LayerFlow view in real JupyterLab + Chromium on a tiny random model (fixtures: conftest.py).

A click on a token circle at a layer row goes through the canvas's own hit-testing (js/lib/flow_canvas.ts,
which publishes its geometry as data-x0 / data-dx / data-rows): the kernel sets selected_target and
selected_layer and computes that target's missing z->z columns at every shown layer in its LigSession, and the
browser draws exactly the values the kernel holds (data-checksum, an FNV-1a of the (n_shown, T) float32 values
written by js/layer_flow.ts, equals attrwidgets.widgets.checksum of the kernel's flow.values). Switching the
route select to "composed" makes the kernel compute the ATT and MLP columns for that target.
"""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.ui

VIEW = ".aw-layer-flow"

# Written into the server's temp root by the test (notebooks/ holds only shipped notebooks).
CELLS = [
    """
import attrwidgets as aw
from attrwidgets.testing import tiny_handle

tiny = tiny_handle("llama")
flow = aw.LayerFlow(model=tiny, prompt="the cat sat on the mat", n_steps=8)
flow
""",
]

# Defined silently in the notebook's kernel: what the kernel holds for the flow, per route part and shown layer
# whether the selected target's column is computed in the session's result.
KERNEL_HELPERS = """
def _aw_flow():
    import numpy as np
    from attrwidgets.widgets import checksum
    j = flow.target_position
    has = lambda part, layer: j >= 0 and (c := flow.result.route(part, layer)) is not None and c.has(j)
    return {"target": flow.selected_target, "position": j, "layer": flow.selected_layer, "route": flow.route,
            "layers": list(flow.layers), "busy": bool(flow.busy), "error": flow.error,
            "computed": {p: [has(p, layer) for layer in flow.layers] for p in ("layer", "att", "mlp")},
            "drawn": bool(np.isfinite(flow.values).all()), "checksum": checksum(flow.values)}
"""


def _kernel_done(
    nb, *, position: int, route: str = "layer", layer: int | None = None, parts: tuple[str, ...] = ("layer",)
) -> dict:
    """Wait until the kernel selected `position` (and `layer`), computed `parts` there at every shown layer,
    and is idle with every shown row filled."""
    layer_ok = "True" if layer is None else f"s['layer'] == {layer}"
    return nb.wait_for_kernel(
        f"(lambda s: s if s['position'] == {position} and s['route'] == {route!r} and {layer_ok} and not s['busy']"
        f" and s['drawn'] and all(all(s['computed'][p]) for p in {parts!r}) else None)(_aw_flow())",
        timeout_s=60,
    )


def test_token_click_at_a_layer_and_composed_route_recompute(lab, page, open_notebook, expect, save_timings):
    name = lab.write_notebook("layer_flow.ipynb", CELLS)
    nb = open_notebook(name)
    t0 = time.monotonic()
    view = nb.run_view(VIEW, KERNEL_HELPERS)
    first = nb.eval("flow.target_position")
    state = _kernel_done(nb, position=first)
    assert state["error"] == "", state["error"]
    expect(view).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    expect(view).to_have_attribute("data-busy", "false")
    expect(view).to_have_attribute("data-can-compute", "true")
    layers = state["layers"]
    expect(view).to_have_attribute("data-computed-rows", str(len(layers)))
    t1 = time.monotonic()

    # A token that is not the target, in the top layer row: nothing is computed for it yet.
    position, row = 2, len(layers) - 1
    assert position != first and layers[row] != state["layer"]
    has_column = f"(lambda c: c is not None and c.has({position}))(flow.result.route('layer', {layers[row]}))"
    assert nb.eval(has_column) is False
    info_before = view.locator(".aw-info").inner_text()
    assert f"target #{first}" in info_before, info_before
    renders = int(view.get_attribute("data-render-count"))
    canvas = view.locator(".aw-flow-canvas")
    x0, dx = float(canvas.get_attribute("data-x0")), float(canvas.get_attribute("data-dx"))
    rows = json.loads(canvas.get_attribute("data-rows"))  # y of each layer row (bottom-up), then "out"
    canvas.click(position={"x": x0 + position * dx, "y": rows[row]})
    expect(view).to_have_attribute("data-selected-target", str(position))  # local, before the kernel hears it
    expect(view).to_have_attribute("data-selected-layer", str(layers[row]))
    state = _kernel_done(nb, position=position, layer=layers[row])
    assert state["error"] == "", state["error"]
    assert state["target"] == position  # target_positions is every position: row index == position
    assert nb.eval(has_column) is True
    expect(view).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    expect(view).to_have_attribute("data-busy", "false")
    expect(view).to_have_attribute("data-error", "")
    expect(view).to_have_attribute("data-computed-rows", str(len(layers)))
    expect(view.locator(".aw-info")).to_contain_text(f"target #{position}")
    expect(view.locator(".aw-info")).to_contain_text(f"L{layers[row]}")
    assert view.locator(".aw-info").inner_text() != info_before
    assert int(view.get_attribute("data-render-count")) > renders
    assert view.get_attribute("data-view-error") is None
    t2 = time.monotonic()

    # The composed route needs ATT (z->u) and MLP (u->z) columns for the target: the kernel computes both.
    assert not all(state["computed"]["att"] + state["computed"]["mlp"]), state["computed"]
    view.locator('select[aria-label="route"]').select_option("composed")
    expect(view).to_have_attribute("data-route", "composed")
    state = _kernel_done(nb, position=position, route="composed", parts=("att", "mlp"))
    assert state["error"] == "", state["error"]
    expect(view).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    expect(view).to_have_attribute("data-busy", "false")
    expect(view).to_have_attribute("data-computed-rows", str(len(layers)))
    assert float(canvas.get_attribute("data-bar-w")) > 0  # composed draws each head's term as bars
    t3 = time.monotonic()

    nb.screenshot("layer-flow")
    assert page.console_errors == [], "\n".join(page.console_errors)
    save_timings(
        {
            "run_all_to_computed_s": t1 - t0,
            "token_click_to_redraw_s": t2 - t1,
            "composed_to_redraw_s": t3 - t2,
        }
    )
