"""The built LayerFlow view in headless Chromium, wired to a live kernel-side LayerFlow on a tiny model.

The page is the standalone export (no network); a Playwright binding stands in for the comm: the view's
save_changes() sends the synced view traits to the Python widget, which computes what the selection lacks
(its LigSession, on the worker thread) and answers with the data traits as ipywidgets would send them. So
a click on a token circle at a layer goes through the view's own hit-testing and writes, the kernel's real
computation, and back into the view's redraw.
"""

from __future__ import annotations

import pytest

from attrwidgets.export_html import to_html
from attrwidgets.widgets import checksum
from attrwidgets.widgets.base import bundle_path
from attrwidgets.widgets.layer_flow import LayerFlow

from .support import connect_to_widget, open_offline_page

VIEW_TRAITS = ["route", "baseline_layer", "baseline_att", "baseline_mlp", "layers", "threshold", "selected_target",
               "selected_position", "selected_layer", "selected_head"]
DATA_TRAITS = ["values", "shares", "head_values", "completeness_error", "computed_baselines", "error", "busy"]



@pytest.fixture(scope="module")
def flow_bundle(built_bundle):
    return bundle_path("layer_flow")  # built_bundle builds (or skips for) every view in VIEWS


def test_click_a_token_at_a_layer_computes_in_the_kernel_and_redraws(browser, flow_bundle, tiny, tmp_path):
    flow = LayerFlow(model=tiny, prompt="the cat sat on the mat", n_steps=4, layers=[0, 1]).wait(60)
    first = flow.target_position
    assert first >= 3 and flow.error == ""
    assert not flow.result.columns[("layer", "self_input_token", 0)].has(2)  # the click must compute it
    to_html(flow, tmp_path / "flow.html")
    pg = open_offline_page(browser, tmp_path / "flow.html", selector=".aw-layer-flow[data-render-count]")
    root = ".aw-layer-flow"
    assert pg.get_attribute(root, "data-target-position") == str(first)
    assert pg.get_attribute(root, "data-computed-rows") == "2"
    assert pg.get_attribute(root, "data-checksum") == checksum(flow.values)
    calls = connect_to_widget(pg, flow, VIEW_TRAITS, DATA_TRAITS, timeout=60)
    renders = int(pg.get_attribute(root, "data-render-count"))

    canvas = pg.locator(".aw-flow-canvas")
    x0, dx = float(canvas.get_attribute("data-x0")), float(canvas.get_attribute("data-dx"))
    rows = [float(y) for y in canvas.get_attribute("data-rows").strip("[]").split(",")]
    canvas.click(position={"x": x0 + 2 * dx, "y": rows[0]})  # token 2 in the layer-0 row
    pg.wait_for_function(
        """() => { const d = document.querySelector('.aw-layer-flow').dataset;
                   return d.targetPosition === '2' && d.selectedLayer === '0' && d.computedRows === '2'
                          && d.busy === 'false'; }""", timeout=60_000)

    assert calls and calls[-1]["selected_target"] == 2 and calls[-1]["selected_layer"] == 0
    assert (flow.target_position, flow.selected_layer, flow.error) == (2, 0, "")
    for layer in (0, 1):  # computed by the kernel's session, kept in its result
        assert flow.result.columns[("layer", "self_input_token", layer)].has(2)
        assert flow.result.columns[("layer", "self_input_token", layer)].has(first)
    assert pg.get_attribute(root, "data-checksum") == checksum(flow.values)  # drawn: the kernel's bytes
    assert int(pg.get_attribute(root, "data-render-count")) > renders
    assert pg.inner_text(".aw-warning") == "" and pg.inner_text(".aw-error") == ""
    assert "target #2" in pg.inner_text(".aw-info")
    pg.screenshot(path=str(tmp_path / "layer_flow_after_click.png"), full_page=True)
    pg.set_viewport_size({"width": 250 + 2 * 16, "height": 900})  # JupyterLab's sidebar (the page has 16 px margins)
    pg.wait_for_function("() => document.querySelector('.aw-layer-flow').dataset.narrow === 'true'")
    view, box = pg.locator(root).bounding_box(), pg.locator(".aw-flow-box").bounding_box()
    assert view["width"] <= 250 and box["x"] + box["width"] <= view["x"] + view["width"]
    assert pg.locator(".aw-toolbar").bounding_box()["height"] < 40  # one row; the rest in the menu
    assert pg.problems == [] and pg.dialogs == []
    pg.close()
    flow.close()
