"""The live views in every host a user runs them in (hosts.py): Notebook 7, JupyterLab's right sidebar through
`sidecar`, and marimo (`mo.ui.anywidget(w)` and a bare `w` under `marimo run`). JupyterLab's own notebook is
covered by test_quickstart_browser.py, test_head_grid_browser.py, test_layer_flow_browser.py and
test_explorer_browser.py.

Each test renders the LIVE view on a tiny random model, clicks a generated token, and waits until the view's
data-checksum (an FNV-1a of the bytes it draws) equals the kernel's checksum of the selected row; no console
errors, and no request leaves the machine.
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.ui

TARGET_TOKENS = ".aw-text .aw-tok.aw-target"
TOKEN_MATRIX = """
import attrwidgets as aw
from attrwidgets.testing import tiny_handle

w = aw.TokenMatrix(model=tiny_handle("llama"), prompt="The capital of France is", max_new_tokens=4)
"""
HEAD_GRID = """
from attrwidgets.testing import tiny_handle
from attrwidgets.widgets.head_grid import HeadGrid

w = HeadGrid(model=tiny_handle("llama"), prompt="The capital of France is", max_new_tokens=3)
"""
LAYER_FLOW = """
import attrwidgets as aw
from attrwidgets.testing import tiny_handle

w = aw.LayerFlow(model=tiny_handle("llama"), prompt="the cat sat on the mat", n_steps=8)
"""
DIFFUSION_TIMELINE = """
import attrwidgets as aw
from attrwidgets.testing import tiny_masked_lm

w = aw.DiffusionTimeline(model=tiny_masked_lm(), prompt="the cat sat on the", layer="block 0", gen_length=8, denoising_steps=4,
                         n_steps=8)
"""
GRAPH_VIEW = """
import attrwidgets as aw
from attrwidgets.testing import tiny_handle

w = aw.GraphView(aw.attribution_graph(tiny_handle("llama"), "the cat sat on the mat", progress=False))
"""
# Defined silently in the host's kernel: the kernel's state for a selected row, None until it is computed.
KERNEL_HELPERS = """
def _aw_row(w, row):
    import numpy as np
    from attrwidgets.widgets.serialization import checksum
    # TokenMatrix, DiffusionTimeline: its row; HeadGrid: contributions (L, H); LayerFlow: values (n_shown, T)
    data = w.scores[row] if hasattr(w, "scores") else w.contributions if hasattr(w, "contributions") else w.values
    if w.selected_target != row or w.busy or data is None or not np.isfinite(data).any():
        return None
    return {"checksum": checksum(data), "error": w.error}
"""


def click_target_and_match_kernel(hosted, expect, row_attr: str = "data-target") -> dict:
    """Click a generated token other than the selected one; wait until the view draws the kernel's bytes.
    `row_attr`: the token's attribute naming its row (DiffusionTimeline's text calls it data-row)."""
    view = hosted.view
    hosted.execute(KERNEL_HELPERS)
    start = hosted.wait_for_kernel(f"_aw_row(w, {int(view.get_attribute('data-selected-target'))})")
    expect(view).to_have_attribute("data-checksum", start["checksum"], timeout=30_000)
    selected = view.get_attribute("data-selected-target")
    token = view.locator(f"{TARGET_TOKENS}:not([{row_attr}='{selected}'])").last
    row = int(token.get_attribute(row_attr))
    renders = int(view.get_attribute("data-render-count"))
    t0 = time.monotonic()
    token.click()
    expect(view).to_have_attribute("data-selected-target", str(row))  # local, before the kernel hears it
    state = hosted.wait_for_kernel(f"_aw_row(w, {row})")
    assert state["error"] == "", state["error"]
    expect(view).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    expect(view).to_have_attribute("data-busy", "false")
    assert int(view.get_attribute("data-render-count")) > renders
    assert view.get_attribute("data-view-error") is None
    return {"click_to_redraw_s": time.monotonic() - t0}


def check_clean(hosted) -> None:
    errors = hosted.console_errors()
    assert errors == [], "\n".join(errors)
    assert hosted.offsite == [], f"requests left the machine: {hosted.offsite}"


@pytest.mark.parametrize("host", ["notebook7", "sidecar", "marimo", "marimo-bare"])
def test_token_matrix_round_trip(host, show_in, expect, save_timings):
    t0 = time.monotonic()
    hosted = show_in(host, TOKEN_MATRIX)
    t1 = time.monotonic()
    timings = click_target_and_match_kernel(hosted, expect)
    if host == "sidecar":  # a real narrow host: the sidebar's default 250 px
        box = hosted.view.bounding_box()
        assert box["width"] <= 260, box
        expect(hosted.view).to_have_attribute("data-narrow", "true")
        row_h = hosted.view.locator(".aw-toolbar select").first.bounding_box()["height"]
        assert hosted.view.locator(".aw-toolbar").bounding_box()["height"] <= 2 * row_h + 12
    hosted.screenshot(f"host-{host}-token-matrix")
    check_clean(hosted)
    save_timings({"open_to_view_s": t1 - t0, **timings, "total_s": time.monotonic() - t0})


@pytest.mark.parametrize("view, setup", [("head-grid", HEAD_GRID), ("layer-flow", LAYER_FLOW)])
@pytest.mark.parametrize("host", ["notebook7"])
def test_view_round_trip(host, view, setup, show_in, expect, save_timings):
    """Click a token in the view's text: the kernel recomputes that target (the HeadGrid's grid; the
    LayerFlow's columns at every shown layer) and the view draws the kernel's bytes."""
    t0 = time.monotonic()
    hosted = show_in(host, setup, selector=f".aw-{view}")
    t1 = time.monotonic()
    timings = click_target_and_match_kernel(hosted, expect)
    hosted.screenshot(f"host-{host}-{view}")
    check_clean(hosted)
    save_timings({"open_to_view_s": t1 - t0, **timings, "total_s": time.monotonic() - t0})


@pytest.mark.parametrize("host", ["notebook7"])
def test_diffusion_timeline_round_trip(host, show_in, expect, save_timings):
    t0 = time.monotonic()
    hosted = show_in(host, DIFFUSION_TIMELINE, selector=".aw-diffusion-timeline")
    t1 = time.monotonic()
    # The first run computes on a worker after the cell has shown the view: wait until the view has its rows.
    first = hosted.wait_for_kernel("w.result is not None and not w.busy and [w.selected_target]")[0]
    expect(hosted.view).to_have_attribute("data-selected-target", str(first))
    # A token unmasked at the shown step (the scrubber starts at step 0): the kernel selects its row.
    timings = click_target_and_match_kernel(hosted, expect, row_attr="data-row")
    hosted.screenshot(f"host-{host}-diffusion-timeline")
    check_clean(hosted)
    save_timings({"open_to_view_s": t1 - t0, **timings, "total_s": time.monotonic() - t0})


GRAPH_HELPERS = """
def _aw_graph(target):
    from attrwidgets.widgets.serialization import checksum
    if w.busy or w.shown_target != target:
        return None
    logits = [n for n, k in zip(w.node_ids, w.node_data[0]) if w.kinds[int(k)] == "logit"]
    return {"checksum": checksum(w.edges), "error": w.error, "logits": logits}
"""


@pytest.mark.parametrize("host", ["notebook7"])
def test_graph_view_round_trip(host, show_in, expect, save_timings):
    """Click a logit of the GraphView (at the place the view says it drew it): the kernel rebuilds the graph for
    that logit alone and the view draws the kernel's edge bytes."""
    t0 = time.monotonic()
    hosted = show_in(host, GRAPH_VIEW, selector=".aw-graph-view")
    t1 = time.monotonic()
    view = hosted.view
    hosted.execute(GRAPH_HELPERS)
    start = hosted.wait_for_kernel("_aw_graph('')")
    expect(view).to_have_attribute("data-checksum", start["checksum"], timeout=30_000)
    logit = start["logits"][1]
    vocab = logit.split("_")[1]
    view.locator(".aw-graph-canvas").scroll_into_view_if_needed()
    p = hosted.page.evaluate(f"document.querySelector('.aw-graph-view').awGraph.screenOf({logit!r})")
    t2 = time.monotonic()
    hosted.page.mouse.click(p["clientX"], p["clientY"])
    expect(view).to_have_attribute("data-target", f"#{vocab}")  # local, before the kernel hears it
    state = hosted.wait_for_kernel(f"_aw_graph('#{vocab}')")
    assert state["error"] == "" and state["logits"] == [logit], state
    expect(view).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    expect(view).to_have_attribute("data-shown-target", f"#{vocab}")
    expect(view).to_have_attribute("data-busy", "false")
    assert view.get_attribute("data-view-error") is None
    hosted.screenshot(f"host-{host}-graph-view")
    check_clean(hosted)
    save_timings({"open_to_view_s": t1 - t0, "logit_click_to_redraw_s": time.monotonic() - t2,
                  "total_s": time.monotonic() - t0})


EXPLORER = """
import attrwidgets as aw
from attrwidgets.testing import tiny_handle

w = aw.explore(tiny_handle("llama"), "The capital of France is", max_new_tokens=3, method="saliency")
"""
EXPLORER_HELPERS = """
def _aw_heads(row):
    import numpy as np
    from attrwidgets.widgets.serialization import checksum
    grid = w.views["heads"]
    if grid.selected_target != row or grid.busy or not np.isfinite(grid.contributions).all():
        return None
    return {"checksum": checksum(grid.contributions), "errors": [v.error for v in w.views.values()],
            "matrix": w.views["tokens"].selected_target}

def _aw_split(layer, head):
    import numpy as np
    from attrwidgets.widgets.serialization import checksum
    m = w.views["tokens"]
    row = m.head_split[m.selected_target] if m.head_split is not None else None
    if m.head_split_of != [layer, head] or row is None or not np.isfinite(row).all() or m.busy:
        return None
    return {"checksum": checksum(row)}

def _aw_inner_node():
    g = w.views["graph"]  # a node inside a layer (not a token or a logit): it gives a position and a layer
    for node in g.node_ids:
        layer, position = g._column(node, "layer"), g._position_of(node)
        if layer is not None and 0 <= layer < g.n_layers and position >= 0:
            return {"id": node, "layer": int(layer), "position": int(position)}
"""


def _show_part(panel, name: str) -> None:
    """In the tab layout (a narrow host), bring the part to the front before clicking it."""
    if panel.get_attribute("data-layout") == "tabs":
        panel.locator(".aw-explorer-tabs button", has_text=name).click()


@pytest.mark.parametrize("host", ["notebook7", "sidecar", "marimo"])
def test_explorer_round_trip(host, show_in, expect, save_timings):
    """The Explorer draws every part from its own widget model in each host (anywidget's host composition); a
    target clicked in the matrix part moves the HeadGrid part, which draws the kernel's contributions."""
    t0 = time.monotonic()
    hosted = show_in(host, EXPLORER, selector=".aw-explorer")
    panel = hosted.view
    expect(panel).to_have_attribute("data-ready", "true", timeout=60_000)
    for part in (".aw-token-matrix", ".aw-head-grid", ".aw-graph-view", ".aw-layer-flow"):
        expect(panel.locator(part)).to_have_count(1)
    if host == "sidecar":  # 250 px: one view at a time, and never a sideways scrollbar on the panel
        expect(panel).to_have_attribute("data-layout", "tabs")
        assert panel.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    hosted.execute(EXPLORER_HELPERS)
    hosted.wait_for_kernel("_aw_heads(0)")
    t1 = time.monotonic()
    panel.locator(".aw-token-matrix .aw-text .aw-tok.aw-target[data-target='2']").click()
    state = hosted.wait_for_kernel("_aw_heads(2)")
    assert state["errors"] == ["", "", "", ""] and state["matrix"] == 2, state
    grid = panel.locator(".aw-head-grid")
    expect(grid).to_have_attribute("data-selected-target", "2", timeout=30_000)
    expect(grid).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    # A head in the grid: the matrix part draws the kernel's split of that head by source token.
    _show_part(panel, "heads")
    canvas = grid.locator(".aw-hg-canvas")
    cell, left, top = (float(canvas.get_attribute(f"data-{k}")) for k in ("cell", "left", "top"))
    canvas.click(position={"x": left + 2.5 * cell, "y": top + 1.5 * cell})  # layer 1, head 2 (scaled when narrow)
    layer, head = hosted.wait_for_kernel(
        "(lambda g: [g.selected_layer, g.selected_head] if g.selected_head >= 0 else None)(w.views['heads'])")
    split = hosted.wait_for_kernel(f"_aw_split({layer}, {head})")
    _show_part(panel, "tokens")
    matrix = panel.locator(".aw-token-matrix")
    expect(matrix).to_have_attribute("data-head-split", f"{layer},{head}", timeout=30_000)
    expect(matrix).to_have_attribute("data-checksum", split["checksum"], timeout=30_000)
    # A graph node: every part moves to its position and layer (a tiny random model's graph keeps hardly any
    # inner node at the default pruning: keep more of it).
    hosted.execute("w.views['graph'].node_threshold = w.views['graph'].edge_threshold = 0.99")
    hosted.wait_for_kernel("not w.views['graph'].busy and _aw_inner_node() is not None")
    node = hosted.eval("_aw_inner_node()")
    _show_part(panel, "graph")
    graph = panel.locator(".aw-graph-view")
    graph.locator(".aw-graph-canvas").scroll_into_view_if_needed()
    at = graph.evaluate(f"e => e.awGraph.screenOf({node['id']!r})")
    assert at is not None, f"node {node['id']} is not drawn"
    hosted.page.mouse.click(at["clientX"], at["clientY"])
    hosted.wait_for_kernel(f"w.selected_position == {node['position']} and w.views['heads'].selected_layer == "
                           f"{node['layer']} and w.views['flow'].selected_layer == {node['layer']}")
    _show_part(panel, "heads")
    expect(grid).to_have_attribute("data-selected-layer", str(node["layer"]), timeout=30_000)
    hosted.screenshot(f"host-{host}-explorer")
    check_clean(hosted)
    save_timings({"open_to_view_s": t1 - t0, "click_to_grid_s": time.monotonic() - t1})
