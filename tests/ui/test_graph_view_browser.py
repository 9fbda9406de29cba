"""The GraphView in real JupyterLab + Chromium on a tiny random model's component graph (fixtures: conftest.py).

aw.attribution_graph builds the graph in the notebook's kernel; the view draws the kernel's pruned graph
(data-checksum, an FNV-1a of the (3, e) float32 edge buffer written by js/graph_view.ts, equals
attrwidgets.widgets.checksum of the kernel's view.edges). A click on a node goes through the canvas's own
hit-testing at the place the view says it drew that node (root.awGraph.screenOf): its upstream and downstream
paths highlight, with the counts the kernel computes from the same edges. A click on another logit makes the
kernel rebuild the graph for that logit alone (graph.rebuild on the worker) and the view draws the new graph.
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.ui

VIEW = ".aw-graph-view"

# Written into the server's temp root by the test (notebooks/ holds only shipped notebooks).
CELLS = [
    """
import attrwidgets as aw
from attrwidgets.testing import tiny_handle

graph = aw.attribution_graph(tiny_handle("llama"), "the cat sat on the mat", progress=False)
view = aw.GraphView(graph, node_threshold=0.8, edge_threshold=0.98)  # a tiny random graph: keep its paths
view
""",
]

# Defined silently in the notebook's kernel: what the kernel shows, and a node with paths on both sides.
KERNEL_HELPERS = """
def _aw_graph():
    from attrwidgets.widgets import checksum
    return {"busy": bool(view.busy), "error": view.error, "shown_target": view.shown_target,
            "selected_node": view.selected_node, "nodes": len(view.node_ids), "edges": int(view.edges.shape[1]),
            "checksum": checksum(view.edges), "labelled": all(view.node_labels), "n_logits": view.graph.n_logits,
            "logits": [n for n, k in zip(view.node_ids, view.node_data[0]) if view.kinds[int(k)] == "logit"]}

def _aw_reach(i, back):
    src, dst = view.edges[0].astype(int).tolist(), view.edges[1].astype(int).tolist()
    if back:
        src, dst = dst, src
    seen, todo = set(), [i]
    while todo:
        j = todo.pop()
        for s, t in zip(src, dst):
            if t == j and s not in seen and s != i:
                seen.add(s)
                todo.append(s)
    return len(seen)

def _aw_middle():
    n = len(view.node_ids)
    best = max(range(n), key=lambda i: min(_aw_reach(i, False), _aw_reach(i, True)))
    return {"id": view.node_ids[best], "up": _aw_reach(best, False), "down": _aw_reach(best, True)}
"""


def _kernel_idle(nb, condition: str = "True") -> dict:
    return nb.wait_for_kernel(f"(lambda s: s if not s['busy'] and ({condition}) else None)(_aw_graph())", timeout_s=60)


def _click_node(page, view, node_id: str) -> None:
    p = page.evaluate(f"document.querySelector('{VIEW}').awGraph.screenOf({node_id!r})")
    assert p is not None, f"node {node_id} is not drawn"
    view.locator(".aw-graph-canvas").scroll_into_view_if_needed()
    p = page.evaluate(f"document.querySelector('{VIEW}').awGraph.screenOf({node_id!r})")  # after the scroll
    page.mouse.click(p["clientX"], p["clientY"])


def test_click_a_node_then_a_logit_recomputes(lab, page, open_notebook, expect, save_timings):
    name = lab.write_notebook("graph_view.ipynb", CELLS)
    nb = open_notebook(name)
    t0 = time.monotonic()
    view = nb.run_view(VIEW, KERNEL_HELPERS)
    state = _kernel_idle(nb, "s['labelled']")  # the labels come from the engine's labeler, on the worker
    assert state["error"] == "", state["error"]
    assert len(state["logits"]) > 1 and state["shown_target"] == ""
    expect(view).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    expect(view).to_have_attribute("data-nodes", str(state["nodes"]))
    expect(view).to_have_attribute("data-busy", "false")
    expect(view).to_have_attribute("data-can-rebuild", "true")
    t1 = time.monotonic()

    # A node with paths on both sides: they highlight, with the kernel's counts, and the kernel hears it.
    middle = nb.eval("_aw_middle()")
    assert middle["up"] > 0 and middle["down"] > 0, middle
    renders = int(view.get_attribute("data-render-count"))
    _click_node(page, view, middle["id"])
    expect(view).to_have_attribute("data-selected-node", middle["id"])
    expect(view).to_have_attribute("data-upstream", str(middle["up"]))
    expect(view).to_have_attribute("data-downstream", str(middle["down"]))
    assert 0 < int(view.get_attribute("data-path-edges")) < state["edges"]
    nb.wait_for_kernel(f"view.selected_node == {middle['id']!r}", timeout_s=30)
    expect(view.locator(".aw-graph-detail .aw-detail-title")).not_to_be_empty()
    assert view.locator(".aw-graph-detail .aw-graph-edge").count() > 0
    assert int(view.get_attribute("data-render-count")) > renders
    nb.screenshot("graph-view-paths")
    t2 = time.monotonic()

    # Another logit: the kernel rebuilds the graph for it alone and the view draws the new graph.
    logit = state["logits"][1]
    vocab = logit.split("_")[1]
    _click_node(page, view, logit)
    expect(view).to_have_attribute("data-target", f"#{vocab}")  # local, before the kernel hears it
    state = _kernel_idle(nb, f"s['shown_target'] == '#{vocab}' and s['labelled']")
    assert state["error"] == "", state["error"]
    assert state["n_logits"] == 1 and state["logits"] == [logit]
    expect(view).to_have_attribute("data-shown-target", f"#{vocab}", timeout=30_000)
    expect(view).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    expect(view).to_have_attribute("data-nodes", str(state["nodes"]))
    expect(view).to_have_attribute("data-busy", "false")
    expect(view.locator(".aw-info")).to_contain_text(f"target: #{vocab}")
    assert view.get_attribute("data-view-error") is None
    t3 = time.monotonic()

    # Back to the graph's own logits: from the kernel's cache, no recomputation.
    view.locator("button", has_text="own logits").click()
    state = _kernel_idle(nb, "s['shown_target'] == ''")
    expect(view).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    assert len(state["logits"]) > 1
    t4 = time.monotonic()

    nb.screenshot("graph-view")
    assert page.console_errors == [], "\n".join(page.console_errors)
    save_timings({"run_all_to_drawn_s": t1 - t0, "node_click_to_paths_s": t2 - t1, "logit_click_to_redraw_s": t3 - t2,
                  "own_logits_from_cache_s": t4 - t3})


# -- the default model (issue 17): readable at the width it has, lit heads, grouped modes, the target's graph ---------
REAL_CELLS = [
    """
import attrwidgets as aw

source = aw.Source(aw.load_model(), "When Mary and John went to the store, John gave a drink to", max_new_tokens=3)
view = aw.GraphView(source=source)  # a component graph: grouped by default
view
""",
]

REAL_HELPERS = """
def _aw_graph():
    from attrwidgets.widgets import checksum
    return {"busy": bool(view.busy), "error": view.error, "nodes": len(view.node_ids), "edges": int(view.edges.shape[1]),
            "checksum": checksum(view.edges), "group": view.group, "prefix": len(view.tokens),
            "positions": view.target_positions, "labelled": all(view.node_labels)}

def _aw_lit(layer, head):
    n = 0
    for k, l, f in zip(view.node_data[0], view.node_data[1], view.node_data[3]):
        kind = view.kinds[int(k)]
        if int(l) == layer and (kind == "layer" or (kind == "attention" and (f < 0 or int(f) == head))):
            n += 1
    return n

def _aw_some_head():
    for k, l, f in zip(view.node_data[0], view.node_data[1], view.node_data[3]):
        if view.kinds[int(k)] in ("attention", "layer"):
            return [int(l), max(int(f), 0)]
"""


def test_a_default_model_graph_uses_the_width_follows_heads_groups_and_targets(lab, page, open_notebook, expect,
                                                                                save_timings):
    page.set_viewport_size({"width": 1600, "height": 1000})  # the notebook's output area: a ~1,150 px view
    nb = open_notebook(lab.write_notebook("graph_view_real.ipynb", REAL_CELLS))
    view = nb.run_view(VIEW, REAL_HELPERS)
    state = _kernel_idle_real(nb, "s['labelled']")
    assert state["error"] == "" and state["group"] == "layers", state
    expect(view).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    canvas = view.locator(".aw-graph-canvas")
    width = view.evaluate("e => e.getBoundingClientRect().width")
    used = float(canvas.get_attribute("data-used-width"))
    assert 1050 <= width <= 1300 and used > 0.85, f"nodes span {used:.0%} of a {width:.0f} px view"
    assert view.evaluate("e => e.scrollWidth <= e.clientWidth + 1")  # never a sideways scrollbar
    nb.screenshot("graph-view-real-layers")
    figures = {"view_px": width, "used_width_layers": used, "nodes_layers": state["nodes"], "edges_layers": state["edges"]}

    # A head selected elsewhere (a linked HeadGrid sets these): its layer's merged nodes ring; -1 clears.
    layer, head = nb.eval("_aw_some_head()")
    nb.execute(f"view.selected_layer, view.selected_head = {layer}, {head}")
    expect(view).to_have_attribute("data-lit", str(nb.eval(f"_aw_lit({layer}, {head})")), timeout=30_000)
    assert int(view.get_attribute("data-lit")) > 0
    nb.execute("view.selected_layer = view.selected_head = -1")
    expect(view).to_have_attribute("data-lit", "0", timeout=30_000)

    # The "show" menu: every node on its own, from the kernel at once.
    view.locator("select.aw-graph-group").select_option("none")
    state = _kernel_idle_real(nb, "s['group'] == 'none'")
    expect(view).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    expect(view).to_have_attribute("data-group", "none")
    figures.update(used_width_none=float(canvas.get_attribute("data-used-width")), nodes_none=state["nodes"],
                   edges_none=state["edges"])
    nb.screenshot("graph-view-real-none")

    # The second target: the graph of its prefix, rebuilt on the source's worker, then back to the first at once.
    positions = state["positions"]
    nb.execute("view.selected_target = 1")
    state = _kernel_idle_real(nb, f"s['prefix'] == {positions[1]}")
    assert state["error"] == ""
    expect(view).to_have_attribute("data-prefix", str(positions[1]), timeout=30_000)
    expect(view).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    expect(view.locator(".aw-info")).to_contain_text(f"position {positions[1]} (target 1)")
    nb.execute("view.selected_target = 0")
    expect(view).to_have_attribute("data-prefix", str(positions[0]), timeout=10_000)

    # Narrow (300 px): no sideways scrollbar, the graph still spans the canvas.
    view.evaluate("e => { e.parentElement.style.width = '300px'; }")
    expect(view).to_have_class(__import__("re").compile("aw-narrow"), timeout=10_000)
    page.wait_for_timeout(300)
    assert view.evaluate("e => e.getBoundingClientRect().width") <= 301
    assert view.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    assert canvas.evaluate("c => c.getBoundingClientRect().width") <= 300
    figures["used_width_300px"] = float(canvas.get_attribute("data-used-width"))
    assert figures["used_width_300px"] > 0.6
    nb.screenshot("graph-view-real-300px")
    assert page.console_errors == [], "\n".join(page.console_errors)
    save_timings(figures)


def _kernel_idle_real(nb, condition: str) -> dict:
    return nb.wait_for_kernel(f"(lambda s: s if not s['busy'] and ({condition}) else None)(_aw_graph())", timeout_s=120)
