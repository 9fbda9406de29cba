// GraphView: a pruned attribution graph on one canvas. Nodes by position (x) and layer (y), tokens at the bottom,
// logits on top, spread over the view's width; size by influence, edges by |weight| (opacity and width) and sign;
// pan (drag) and zoom (wheel). Click a node: its upstream and downstream paths highlight and the detail panel lists
// its strongest edges; shift-click pins it; click a logit: the kernel rebuilds the graph for it alone. The sliders
// re-prune and the "show" menu merges heads or layers, in the kernel. A head or layer selected in a linked view
// (selected_layer, selected_head) rings its nodes.
// Python side: attrwidgets/widgets/graph_view.py (same trait names, see lib/graph_model.ts GraphViewModel).
import type { RenderProps } from "./types";
import { checksumFloat32 } from "./lib/checksum";
import { legendGradient } from "./lib/colour";
import { h } from "./lib/dom";
import { GraphCanvas } from "./lib/graph_canvas";
import { graphControls, showControls, type GraphControls } from "./lib/graph_controls";
import { describeNode, renderDetail } from "./lib/graph_detail";
import { layoutGraph } from "./lib/graph_layout";
import {
  decodeGraph, kindOf, litNodes, logitTarget, nodeName, type GraphData, type GraphViewModel,
} from "./lib/graph_model";
import { pathsThrough } from "./lib/graph_paths";
import { injectGraphStyle } from "./lib/graph_style";
import { createView, drawWidth, type View } from "./lib/view_base";

const DATA_TRAITS = ["tokens", "n_layers", "kinds", "node_columns", "node_data", "node_ids", "node_labels", "edges"] as const;
const REDRAW_TRAITS = [
  ...DATA_TRAITS, "summary", "node_threshold", "edge_threshold", "selected_node", "selected_logit", "pinned",
  "pinned_only", "target", "shown_target", "can_rebuild", "llm_id", "group", "selected_layer", "selected_head",
  "selected_target", "target_positions",
] as const;

type Graph = View<GraphViewModel>;

const score = (v: number | null | undefined) => (typeof v === "number" ? v.toFixed(3) : "\u2014");

// The graph's nodes name their tokens by text (the token records' decoded text, UNTRUSTED: textContent only).
const tokenTexts = (model: Graph["model"]): string[] => (model.get("tokens") || []).map((t) => t.clean);

type Parts = GraphControls & {
  view: Graph; info: HTMLDivElement; detail: HTMLDivElement; canvas: GraphCanvas; data: () => GraphData;
  pick: (i: number, shift: boolean) => void;
};

function render({ model, el, brush }: RenderProps<GraphViewModel>) {
  // keys: those on the canvas (+, -, 0, Esc) belong to the graph
  const view = createView(model, el, { className: "aw-graph-view", keys: true, styles: [injectGraphStyle], brush });
  const { root, tooltip } = view;
  const info = h("div", "aw-info");
  const hint = h("div", "aw-hint", "Click a node: its paths \u00b7 shift-click: pin \u00b7 click a logit: explain it " +
    "alone \u00b7 drag: pan \u00b7 wheel: zoom \u00b7 0: fit \u00b7 Esc: clear");
  const legend = h("div", "aw-legend");
  const legendBar = h("span", "aw-legend-bar");
  legendBar.style.background = legendGradient("signed");
  legend.append(h("span", "", "edges: \u2212"), legendBar, h("span", "", "+ \u00b7 strength |weight| \u00b7 size: influence"
    + " \u00b7 \u25a0 token/logit \u25cf feature/MLP \u25c6 error \u25b2 head \u25ac merged layer"));
  const box = h("div", "aw-graph-box");
  const detail = h("div", "aw-detail aw-graph-detail aw-hidden");
  const canvas = new GraphCanvas(tooltip, {
    pick: (i, e) => parts.pick(i, e.shiftKey),
    describe: (i) => (current ? describeNode(current.g, i, tokenTexts(model)) : ""),
    hover: (i) => view.hover(i >= 0 && current ? current.g.position[i] : -1), // brushing: the node's position
  });
  view.onBrush(({ hovered, picked }) => {
    canvas.brushed = hovered >= 0 ? hovered : picked;
    canvas.requestRedraw();
  });
  box.appendChild(canvas.canvas);
  const bar = graphControls(view, () => canvas.fit());

  // Decoded data and its layout are rebuilt only when the data traits change, not on a selection.
  let current: { g: GraphData; from: unknown[] } | null = null;
  let shownTarget: string | null = null;
  function data(): GraphData {
    const from = DATA_TRAITS.map((k) => model.get(k));
    if (!current || from.some((v, i) => v !== current?.from[i])) {
      const g = decodeGraph(model);
      const tokens = tokenTexts(model);
      current = { g, from };
      const refit = shownTarget !== model.get("shown_target") + tokens.length;
      shownTarget = model.get("shown_target") + tokens.length; // another target, or another row's prefix
      canvas.setData(g, (aspect) => layoutGraph(g, tokens.length, model.get("n_layers") || 0, aspect), tokens, refit);
    }
    return current.g;
  }
  const parts: Parts = {
    ...bar, view, info, detail, canvas, data, pick: (i, shift) => pick(parts, current?.g, i, shift),
  };
  // Taller for a model of many layers (rows of at least ~16 px), within what a notebook cell shows at once.
  const size = () => {
    const w = drawWidth(root, 160);
    const rows = (model.get("n_layers") || 0) + 2;
    const tall = Math.min(680, Math.max(320, Math.round(w * 0.55), rows * 16 + 90));
    canvas.resize(w, root.classList.contains("aw-narrow") ? Math.min(tall, 420) : tall);
  };
  exposeForTests(root, canvas);
  return view.start({
    top: [bar.bar.element], body: [info, hint, box, legend, detail], traits: REDRAW_TRAITS, draw: () => draw(parts),
    resize: size, // sized before the first draw, and again on each change of width
  });
}

/** A click on node i (-1: on nothing): select it, or with shift pin it; a click on a logit of a graph with several
 * asks the kernel to rebuild the graph for that one alone. */
function pick(p: Parts, g: GraphData | undefined, i: number, shift: boolean): void {
  const { model, write } = p.view;
  if (!g || i < 0) {
    write("selected_node", "");
    write("selected_logit", -1);
    return;
  }
  const id = g.ids[i];
  if (shift) {
    const pins = model.get("pinned") || [];
    write("pinned", pins.includes(id) ? pins.filter((q) => q !== id) : [...pins, id]);
    return;
  }
  const again = model.get("selected_node") === id;
  p.view.pick(again ? -1 : g.position[i]);
  write("selected_node", again ? "" : id);
  write("selected_logit", again ? -1 : g.logits.indexOf(i));
  if (!again && kindOf(g, i) === "logit" && g.logits.length > 1 && model.get("can_rebuild")) {
    p.target.value = logitTarget(g, i);
    write("target", p.target.value);
  }
}

function draw(p: Parts): void {
  const { model, root } = p.view;
  const g = p.data();
  const tokens = tokenTexts(model);
  const sid = model.get("selected_node") || "";
  const sel = sid ? g.index.get(sid) ?? -1 : -1;
  const paths = pathsThrough(g, sel);
  const pinnedIds = model.get("pinned") || [];
  const pinned = new Uint8Array(g.n);
  for (const id of pinnedIds) {
    const i = g.index.get(id);
    if (i !== undefined) pinned[i] = 1;
  }
  const only = Boolean(model.get("pinned_only")) && pinnedIds.length > 0;
  const lit = litNodes(g, model.get("selected_layer") ?? -1, model.get("selected_head") ?? -1);
  const nLit = lit.reduce((a, b) => a + b, 0);
  p.canvas.setSelection({ paths, selected: sel, pinned, visible: only ? pinned : null, lit: nLit ? lit : null });

  const typed = model.get("target") || "";
  const shown = model.get("shown_target") || "";
  showControls(p, model, typed, shown);

  const s = model.get("summary") || {};
  const merged = s.group ? ` (${s.group} merged from ${s.ungrouped_nodes} nodes, ${s.ungrouped_edges} edges)` : "";
  p.info.textContent = `${g.n} of ${s.n_nodes ?? "?"} nodes \u00b7 ${g.e} of ${s.n_edges ?? "?"} edges${merged} \u00b7 ` +
    `replacement ${score(s.replacement_score)} \u00b7 completeness ${score(s.completeness_score)} \u00b7 ` +
    `${explains(model, tokens)}target: ` +
    (shown || `own logits (${g.logits.map((i) => JSON.stringify(nodeName(g, i, tokens))).join(", ")})`);
  const rows = model.get("target_positions") || [];
  const row = model.get("selected_target") ?? -1;
  const wanted = row >= 0 && row < rows.length ? rows[row] : -1;
  const warnings: string[] = [];
  if (typed !== shown && model.get("busy")) warnings.push(`computing the graph for target ${typed || "own logits"}\u2026`);
  else if (wanted >= 0 && wanted !== tokens.length && model.get("busy")) {
    warnings.push(`computing the graph for the token at position ${wanted}\u2026`);
  }
  if (sid && sel < 0) {
    warnings.push(`node ${sid} is not in the pruned graph at these thresholds: raise the node threshold, or pin it.`);
  }
  if (model.get("pinned_only") && !pinnedIds.length) warnings.push("no pinned nodes yet: shift-click nodes to pin them.");
  p.view.status.warnBanner.textContent = warnings.join("\n");

  renderDetail(p.detail, sel < 0 ? null : {
    g, node: sel, tokens, pinned: pinned[sel] === 1,
    onSelect: (j) => p.pick(j, false),
    onPin: () => p.pick(sel, true),
    onClose: () => p.pick(-1, false),
  });
  const shownPins = pinned.reduce((a, b) => a + b, 0);
  Object.assign(root.dataset, {
    nodes: String(g.n), edges: String(g.e), selectedNode: sid, selectedIndex: String(sel),
    selectedLogit: String(model.get("selected_logit")), upstream: String(paths?.counts.upstream ?? 0),
    downstream: String(paths?.counts.downstream ?? 0), pathEdges: String(paths?.counts.edges ?? 0),
    pinned: String(pinnedIds.length), pinnedShown: String(shownPins), target: typed, shownTarget: shown,
    checksum: checksumFloat32(g.edgeData), canRebuild: String(Boolean(model.get("can_rebuild"))),
    lit: String(nLit), group: model.get("group") || "none", prefix: String(tokens.length),
  });
}

/** On a source's rows: which token the graph explains (the one after its prompt). */
function explains(model: Graph["model"], tokens: string[]): string {
  const rows = model.get("target_positions") || [];
  if (!rows.length) return "";
  const row = rows.includes(tokens.length) ? ` (target ${rows.indexOf(tokens.length)})` : "";
  return `explains the token at position ${tokens.length}${row} \u00b7 `;
}

/** For tests and the curious: where a node is drawn, in canvas and in page coordinates. */
function exposeForTests(root: HTMLElement, canvas: GraphCanvas): void {
  Object.assign(root, {
    awGraph: {
      screenOf(id: string) {
        const p = canvas.screenOf(id);
        if (!p) return null;
        const b = canvas.canvas.getBoundingClientRect();
        return { x: p[0], y: p[1], clientX: b.left + p[0], clientY: b.top + p[1] };
      },
      nodeAt: (x: number, y: number) => canvas.nodeAt(x, y),
      usedWidth: () => canvas.usedWidth(),
      redraw: () => canvas.redraw(),
    },
  });
}

export default { render };
