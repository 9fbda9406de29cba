"""The GraphView front-end's pure parts, run in node on the kernel's own traits: edges fade by |weight| relative to
the strongest shown (js/lib/graph_edges.ts), the layout spreads the columns to the view's aspect
(js/lib/graph_layout.ts), and a layer / head selection lights up the right nodes, merged ones included
(js/lib/graph_model.ts litNodes)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from attrwidgets.core.graph.graph import KINDS
from attrwidgets.testing import toy_graph
from attrwidgets.widgets.graph_view import GraphView
from attrwidgets.widgets.html_page import base64_buffers

from .support import node_script

ENTRY = """
import { readFileSync } from "node:fs";
import { EDGE_LEVELS, edgeInk, edgeLevel } from "%(root)s/js/lib/graph_edges";
import { layoutGraph } from "%(root)s/js/lib/graph_layout";
import { decodeGraph, litNodes } from "%(root)s/js/lib/graph_model";
const input = JSON.parse(readFileSync(process.argv[2], "utf8"));
const tensor = (t) => ({ buffer: new DataView(Uint8Array.from(Buffer.from(t.base64, "base64")).buffer), dtype: t.dtype, shape: t.shape });
const out = { levels: EDGE_LEVELS, edges: input.weights.map((w) => { const l = edgeLevel(w === null ? NaN : w, input.max); return { level: l, ...edgeInk(l) }; }), views: [] };
for (const state of input.views) {
  const values = { ...state, node_data: tensor(state.node_data), edges: tensor(state.edges) };
  const g = decodeGraph({ get: (k) => values[k] });
  const layouts = input.aspects.map((a) => { const L = layoutGraph(g, state.tokens.length, state.n_layers, a);
    return { width: L.width, height: L.height, xmin: Math.min(...L.x), xmax: Math.max(...L.x) }; });
  const lit = input.selections.map(([layer, head]) => [...litNodes(g, layer, head)].flatMap((v, i) => (v ? [i] : [])));
  out.views.push({ layouts, lit });
}
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def run_node(tmp_path_factory):
    return node_script(tmp_path_factory.mktemp("graph_node"), ENTRY)


def test_edges_fade_by_weight_relative_to_the_strongest(run_node):
    weights = [0.0, 1e-4, 0.003, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0, 2.0, -1.0, -0.01, float("nan")]
    out = run_node({"weights": [None if np.isnan(w) else w for w in weights], "max": 1.0, "views": [],
                    "aspects": [], "selections": []})
    edges, top = out["edges"], out["levels"] - 1
    by_size = [edges[i] for i in np.argsort([abs(w) for w in weights[:12]])]  # 0 .. 1, non-negative
    for a, b in itertools.pairwise(by_size):  # stronger: never fainter, never thinner
        assert b["level"] >= a["level"] and b["alpha"] >= a["alpha"] and b["width"] >= a["width"]
    assert edges[11]["level"] == top and edges[11]["alpha"] == pytest.approx(1.0)  # the strongest: full ink
    assert edges[12] == edges[11]  # above the largest shown (cannot happen): capped
    assert edges[13] == edges[11] and edges[14] == edges[3]  # the sign is the colour, not the strength
    faintest = edges[0]
    assert faintest["level"] == 0 and 0.1 <= faintest["alpha"] <= 0.2 and faintest["width"] >= 0.5  # still visible
    assert edges[15] == faintest  # NaN: the faintest, not an exception
    assert edges[11]["alpha"] > 4 * faintest["alpha"] and edges[11]["width"] > 4 * faintest["width"]
    assert edges[3]["level"] < edges[5]["level"] < edges[8]["level"] < top  # weights spread over the levels


def _state(view) -> dict:
    return base64_buffers(view.get_state())


def test_the_layout_spreads_to_the_views_aspect_and_lights_the_selected_head(run_node):
    view = GraphView(toy_graph(3, n_layers=6, n_pos=5, components=True), node_threshold=0.95,
                     edge_threshold=0.99).wait(10)
    heads = [i for i, k in enumerate(view.node_data[0]) if KINDS[int(k)] == "attention"]
    layer, head = int(view.node_data[1, heads[0]]), int(view.node_data[3, heads[0]])
    selections = [[layer, head], [layer, -1], [-1, head], [-1, -1]]
    plain = _state(view)
    view.group = "layers"
    grouped = _state(view)
    grouped_data = view.node_data
    out = run_node({"weights": [], "max": 1, "views": [plain, grouped], "aspects": [0, 1150 / 560, 260 / 340],
                    "selections": selections})
    natural, wide, narrow = out["views"][0]["layouts"]
    assert natural["width"] / natural["height"] < 1  # 5 tokens, 8 rows: its own columns are narrow
    for layout, aspect in ((wide, 1150 / 560), (narrow, 260 / 340)):
        assert layout["width"] / layout["height"] == pytest.approx(aspect, rel=1e-3)  # fitted, it fills the view
        assert (layout["xmax"] - layout["xmin"]) / layout["width"] > 0.7  # nodes from the first column to the last
    lit_head, lit_layer, no_layer, none = out["views"][0]["lit"]
    ungrouped = np.asarray(view._shown.node_data)
    kinds = [KINDS[int(k)] for k in ungrouped[0]]
    assert lit_head == [i for i in range(len(kinds)) if kinds[i] == "attention" and ungrouped[1, i] == layer
                        and ungrouped[3, i] == head]
    assert lit_layer == [i for i in range(len(kinds)) if kinds[i] not in ("token", "logit") and ungrouped[1, i] == layer]
    assert no_layer == [] and none == []
    merged = out["views"][1]["lit"][0]  # grouped by layers: the merged node of that layer lights for any head
    assert merged and all(int(grouped_data[1, i]) == layer for i in merged)
    assert any(view.node_ids[i].startswith("L") for i in merged)
    view.close()
