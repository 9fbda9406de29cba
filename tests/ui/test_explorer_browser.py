"""aw.explore in real JupyterLab + Chromium on a tiny random model (fixtures: conftest.py): one panel draws every
view from its own widget model (anywidget's host composition), and a click in one view moves the others
through the kernel (docs/linking.md). The HeadGrid part draws exactly the contributions the kernel holds for
the target clicked in the matrix (data-checksum against attrwidgets.widgets.checksum)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ui

VIEW = ".aw-explorer"
CELLS = [
    """
import attrwidgets as aw
from attrwidgets.testing import tiny_handle

ex = aw.explore(tiny_handle("llama"), "The capital of France is", max_new_tokens=3, method="saliency")
ex
""",
]
KERNEL_HELPERS = """
def _aw_ex():
    import numpy as np
    from attrwidgets.widgets import checksum
    grid = ex.views["heads"]
    return {"targets": {n: v.selected_target for n, v in ex.views.items()}, "explorer": ex.selected_target,
            "busy": any(v.busy for v in ex.views.values()), "errors": [v.error for v in ex.views.values()],
            "computed": bool(np.isfinite(grid.contributions).all()), "checksum": checksum(grid.contributions),
            "layer": ex.views["flow"].selected_layer, "head": ex.views["flow"].selected_head,
            "graph_prefix": len(ex.views["graph"].tokens), "graph_checksum": checksum(ex.views["graph"].edges)}

def _aw_split():
    import numpy as np
    from attrwidgets.widgets import checksum
    m = ex.views["tokens"]
    row = m.head_split[m.selected_target] if m.head_split is not None else None
    done = row is not None and bool(np.isfinite(row).all()) and not m.busy
    return {"of": m.head_split_of, "done": done, "checksum": checksum(row) if done else "",
            "sum": float(row.sum()) if done else None,
            "grid": float(ex.views["heads"].contributions[1, 2])}

def _aw_inner_node():
    g = ex.views["graph"]  # a node inside a layer, not a token or a logit: it gives a position and a layer
    for node in g.node_ids:
        layer, position = g._column(node, "layer"), g._position_of(node)
        if layer is not None and 0 <= layer < g.n_layers and position >= 0:
            return {"id": node, "layer": int(layer), "position": int(position)}
"""


def test_every_view_draws_and_a_click_in_one_moves_the_others(lab, page, open_notebook, expect):
    name = lab.write_notebook("explorer.ipynb", CELLS)
    nb = open_notebook(name)
    panel = nb.run_view(VIEW, KERNEL_HELPERS)
    expect(panel).to_have_attribute("data-ready", "true", timeout=60_000)
    for part in (".aw-token-matrix", ".aw-head-grid", ".aw-graph-view", ".aw-layer-flow"):
        expect(panel.locator(part)).to_have_count(1)
    state = nb.wait_for_kernel("(lambda s: s if not s['busy'] and s['computed'] else None)(_aw_ex())",
                               timeout_s=120)
    assert state["errors"] == ["", "", "", ""], state["errors"]

    matrix = panel.locator(".aw-token-matrix")
    if panel.get_attribute("data-layout") == "tabs":
        panel.locator(".aw-explorer-tabs button", has_text="tokens").click()
    matrix.locator(".aw-text .aw-tok.aw-target").nth(2).click()  # the third generated token
    state = nb.wait_for_kernel(
        "(lambda s: s if s['targets']['heads'] == 2 and not s['busy'] and s['computed'] else None)(_aw_ex())",
        timeout_s=120)
    assert state["targets"]["tokens"] == 2 and state["explorer"] == 2 and state["targets"]["graph"] == 2
    grid = panel.locator(".aw-head-grid")
    expect(grid).to_have_attribute("data-selected-target", "2", timeout=30_000)
    expect(grid).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    # The graph follows the target: the graph of the tokens before it, drawn as the kernel holds it.
    positions = nb.eval("ex.target_positions")
    assert state["graph_prefix"] == positions[2]
    if panel.get_attribute("data-layout") == "grid":
        graph = panel.locator(".aw-graph-view")
        expect(graph).to_have_attribute("data-prefix", str(positions[2]), timeout=30_000)
        expect(graph).to_have_attribute("data-checksum", state["graph_checksum"], timeout=30_000)

    # A head in the grid: the matrix shows what that head carries to the target from each source token.
    if panel.get_attribute("data-layout") == "tabs":
        panel.locator(".aw-explorer-tabs button", has_text="heads").click()
    canvas = grid.locator(".aw-hg-canvas")
    cell, left, top = (float(canvas.get_attribute(f"data-{k}")) for k in ("cell", "left", "top"))
    canvas.click(position={"x": left + 2.5 * cell, "y": top + 1.5 * cell})  # layer 1, head 2
    split = nb.wait_for_kernel("(lambda s: s if s['of'] == [1, 2] and s['done'] else None)(_aw_split())",
                               timeout_s=120)
    assert abs(split["sum"] - split["grid"]) <= 1e-4 * max(1.0, abs(split["grid"])), split
    expect(matrix).to_have_attribute("data-head-split", "1,2", timeout=30_000)
    expect(matrix).to_have_attribute("data-checksum", split["checksum"], timeout=30_000)

    # A graph node: every view moves to its position and layer, and the grid draws that layer selected.
    if panel.get_attribute("data-layout") == "tabs":
        panel.locator(".aw-explorer-tabs button", has_text="graph").click()
    # A tiny random model's graph keeps hardly any inner node at the default pruning: keep more of it.
    nb.execute("ex.views['graph'].node_threshold = ex.views['graph'].edge_threshold = 0.99")
    nb.wait_for_kernel("not ex.views['graph'].busy and _aw_inner_node() is not None", timeout_s=60)
    node = nb.eval("_aw_inner_node()")
    graph_view = panel.locator(".aw-graph-view")
    graph_view.locator(".aw-graph-canvas").scroll_into_view_if_needed()
    at = graph_view.evaluate(f"e => e.awGraph.screenOf({node['id']!r})")
    assert at is not None, f"node {node['id']} is not drawn"
    page.mouse.click(at["clientX"], at["clientY"])
    nb.wait_for_kernel(f"ex.selected_position == {node['position']} and ex.selected_layer == {node['layer']} "
                       f"and ex.views['flow'].selected_layer == {node['layer']}", timeout_s=60)
    expect(grid).to_have_attribute("data-selected-layer", str(node["layer"]), timeout=30_000)
    assert page.console_errors == [], "\n".join(page.console_errors)
    nb.screenshot("explorer")


# Every selection change the kernel sees, in any part or the Explorer: a hover must add none.
MOVES_HELPER = """
_aw_moves = []
for _aw_view in [ex, *ex.views.values()]:
    _aw_view.observe(lambda c: _aw_moves.append((type(c["owner"]).__name__, c["name"], c["new"])),
                     names=["selected_position", "selected_target", "selected_layer", "selected_head", "selected_node"])
"""
PARTS = (".aw-token-matrix", ".aw-head-grid", ".aw-graph-view", ".aw-layer-flow")


def test_hovering_brushes_every_part_without_the_kernel(lab, page, open_notebook, expect):
    nb = open_notebook(lab.write_notebook("explorer_brush.ipynb", CELLS))
    panel = nb.run_view(VIEW, KERNEL_HELPERS)
    expect(panel).to_have_attribute("data-ready", "true", timeout=60_000)
    nb.wait_for_kernel("(lambda s: s if not s['busy'] and s['computed'] else None)(_aw_ex())", timeout_s=120)
    nb.execute(MOVES_HELPER)
    if panel.get_attribute("data-layout") == "tabs":
        panel.locator(".aw-explorer-tabs button", has_text="tokens").click()
    panel.locator(".aw-token-matrix .aw-text .aw-tok[data-position='2']").hover()
    for part in PARTS:  # hidden parts (tabs) are marked too, ready when shown
        expect(panel.locator(part)).to_have_attribute("data-brushed", "2")
    for part in (".aw-head-grid", ".aw-layer-flow"):  # the same token marked in their running text
        expect(panel.locator(f"{part} .aw-text .aw-tok.aw-brushed[data-position='2']")).to_have_count(1)
    page.wait_for_timeout(1000)  # anything a view sent would have arrived by now
    assert nb.eval("_aw_moves") == []
    assert nb.eval("(ex.selected_position, ex.views['heads'].selected_position)") == [-1, -1]

    page.mouse.move(2, 2)
    for part in PARTS:
        expect(panel.locator(part)).to_have_attribute("data-brushed", "-1")
    panel.locator(".aw-token-matrix .aw-text .aw-tok.aw-target[data-target='1']").click()  # a click goes through
    nb.wait_for_kernel("(lambda s: s if s['targets']['heads'] == 1 and not s['busy'] else None)(_aw_ex())",
                       timeout_s=120)
    for part in PARTS:  # the kernel's answer cleared the pick: no mark is left behind
        expect(panel.locator(part)).to_have_attribute("data-picked", "-1", timeout=30_000)
    expect(panel.locator(".aw-head-grid")).to_have_attribute("data-selected-target", "1")
    assert page.console_errors == [], "\n".join(page.console_errors)
    nb.screenshot("explorer-brush")


def test_show_right_opens_the_explorer_in_the_sidebar(lab, page, open_notebook, expect):
    """One call opens the panel in JupyterLab's right sidebar (sidecar), where it shows one view at a time."""
    cells = [CELLS[0].replace('method="saliency")\nex\n', 'method="saliency", show="right")\n')]
    assert cells[0].rstrip().endswith('show="right")')  # no `ex` after it: the sidebar alone shows it
    nb = open_notebook(lab.write_notebook("explorer_right.ipynb", cells))
    panel = nb.run_view(".jupyterlab-sidecar .aw-explorer", KERNEL_HELPERS)
    expect(panel).to_have_attribute("data-ready", "true", timeout=60_000)
    expect(panel).to_have_attribute("data-layout", "tabs")
    assert panel.evaluate("e => e.scrollWidth <= e.clientWidth + 1")  # never a sideways scrollbar
    assert page.locator(".aw-explorer").count() == 1  # in the sidebar, not in the cell as well
    nb.wait_for_kernel("(lambda s: s if not s['busy'] and s['computed'] else None)(_aw_ex())", timeout_s=120)
    panel.locator(".aw-token-matrix .aw-text .aw-tok.aw-target[data-target='1']").click()
    state = nb.wait_for_kernel(
        "(lambda s: s if s['targets']['heads'] == 1 and not s['busy'] and s['computed'] else None)(_aw_ex())",
        timeout_s=120)
    panel.locator(".aw-explorer-tabs button", has_text="heads").click()
    grid = panel.locator(".aw-head-grid")
    expect(grid).to_be_visible()
    expect(grid).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    assert page.console_errors == [], "\n".join(page.console_errors)
    nb.screenshot("explorer-right")
