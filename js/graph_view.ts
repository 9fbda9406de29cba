// GraphView: a pruned attribution graph on one canvas. Nodes by position (x) and layer (y), tokens at the bottom,
// logits on top; size by influence, edges by |weight| and sign; pan (drag) and zoom (wheel). Click a node: its
// upstream and downstream paths highlight and the detail panel lists its strongest edges; shift-click pins it;
// click a logit: the kernel rebuilds the graph for it alone. The sliders re-prune in the kernel.
// Python side: attrwidgets/widgets/graph_view.py (same trait names, see lib/graph_model.ts GraphViewModel).
import type { RenderProps } from "./types";
import { checksumFloat32 } from "./lib/checksum";
import { legendGradient } from "./lib/colour";
import { h, onCommit } from "./lib/dom";
import { GraphCanvas } from "./lib/graph_canvas";
import { describeNode, renderDetail } from "./lib/graph_detail";
import { layoutGraph, type Layout } from "./lib/graph_layout";
import { decodeGraph, kindOf, logitTarget, nodeName, type GraphData, type GraphViewModel } from "./lib/graph_model";
import { pathsThrough } from "./lib/graph_paths";
import { injectGraphStyle } from "./lib/graph_style";
import { labeled } from "./lib/layout";
import { createView, drawWidth, type View } from "./lib/view_base";

const DATA_TRAITS = ["tokens", "n_layers", "kinds", "node_columns", "node_data", "node_ids", "node_labels", "edges"] as const;
const REDRAW_TRAITS = [
  ...DATA_TRAITS, "summary", "node_threshold", "edge_threshold", "selected_node", "selected_logit", "pinned",
  "pinned_only", "target", "shown_target", "can_rebuild", "llm_id",
] as const;

type Graph = View<GraphViewModel>;

function slider(min: number, step: number, onInput: (v: number) => void): [HTMLInputElement, HTMLOutputElement] {
  const input = h("input");
  Object.assign(input, { type: "range", min: String(min), max: "1", step: String(step) });
  const out = h("output");
  input.addEventListener("input", () => onInput(Number(input.value)));
  return [input, out];
}

const score = (v: number | null | undefined) => (typeof v === "number" ? v.toFixed(3) : "\u2014");

// The graph's nodes name their tokens by text (the token records' decoded text, UNTRUSTED: textContent only).
const tokenTexts = (model: Graph["model"]): string[] => (model.get("tokens") || []).map((t) => t.clean);

/** The toolbar: the logit target in the row; the thresholds, pinned-only and fit in the menu when narrow. */
function controls(view: Graph, fit: () => void) {
  const { write } = view;
  const target = h("input");
  Object.assign(target, { type: "text", placeholder: '" Paris", #1234, Paris - London', spellcheck: false });
  onCommit(target, () => write("target", target.value));
  const own = h("button", "", "own logits");
  own.type = "button";
  own.title = "back to the graph's own logit targets";
  own.addEventListener("click", () => {
    target.value = "";
    write("target", "");
  });
  const targetLabel = labeled("target", target);
  targetLabel.classList.add("aw-graph-target");
  targetLabel.append(own);
  const [nodeSlider, nodeOut] = slider(0.05, 0.01, (v) => write("node_threshold", v));
  const [edgeSlider, edgeOut] = slider(0.1, 0.01, (v) => write("edge_threshold", v));
  const nodeLabel = labeled("nodes", nodeSlider);
  const edgeLabel = labeled("edges", edgeSlider);
  for (const [label, out] of [[nodeLabel, nodeOut], [edgeLabel, edgeOut]] as const) {
    label.classList.add("aw-graph-threshold");
    label.append(out);
  }
  const titles = new Map([[nodeSlider, "node threshold: keep nodes up to this share of the cumulative influence"],
    [edgeSlider, "edge threshold: keep edges up to this share of the cumulative influence"]]);
  const pinnedOnly = h("input");
  pinnedOnly.type = "checkbox";
  pinnedOnly.addEventListener("change", () => write("pinned_only", pinnedOnly.checked));
  const fitButton = h("button", "", "fit");
  fitButton.type = "button";
  fitButton.title = "show the whole graph (key 0)";
  fitButton.addEventListener("click", fit);
  const bar = view.toolbar({
    primary: [targetLabel], secondary: [nodeLabel, edgeLabel, labeled("pinned only", pinnedOnly), fitButton],
  });
  return { bar, target, own, nodeSlider, nodeOut, edgeSlider, edgeOut, titles, pinnedOnly };
}

type Parts = ReturnType<typeof controls> & {
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
  legend.append(h("span", "", "edges: \u2212"), legendBar, h("span", "", "+ \u00b7 width |weight| \u00b7 size: influence"
    + " \u00b7 \u25a0 token/logit \u25cf feature \u25c6 error \u25b2 head"));
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
  const bar = controls(view, () => canvas.fit());

  // Decoded data and its layout are rebuilt only when the data traits change, not on a selection.
  let current: { g: GraphData; layout: Layout; from: unknown[] } | null = null;
  let shownTarget: string | null = null;
  function data(): GraphData {
    const from = DATA_TRAITS.map((k) => model.get(k));
    if (!current || from.some((v, i) => v !== current?.from[i])) {
      const g = decodeGraph(model);
      const tokens = tokenTexts(model);
      current = { g, layout: layoutGraph(g, tokens.length, model.get("n_layers") || 0), from };
      const refit = shownTarget !== model.get("shown_target");
      shownTarget = model.get("shown_target");
      canvas.setData(g, current.layout, tokens, refit);
    }
    return current.g;
  }
  const parts: Parts = {
    ...bar, view, info, detail, canvas, data, pick: (i, shift) => pick(parts, current?.g, i, shift),
  };
  const size = () => {
    const w = drawWidth(root, 160);
    canvas.resize(w, root.classList.contains("aw-narrow") ? 340 : Math.min(560, Math.max(320, Math.round(w * 0.55))));
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

/** The toolbar follows the model; a static page (no kernel) disables what needs one. */
function showControls(p: Parts, typed: string, shown: string): void {
  const { model } = p.view;
  if (document.activeElement !== p.target) p.target.value = typed;
  const isStatic = Boolean(model.get("static_page"));
  p.own.disabled = !typed && !shown;
  p.target.disabled = !model.get("can_rebuild");
  p.target.title = model.get("can_rebuild") ? 'other logit target(s): a token (" Paris"), a vocab id (#1234), ' +
    "or a contrast (Paris - London); Enter computes" : isStatic ? "a static page: other targets need the kernel"
    : "this graph has no model attached: it cannot be recomputed";
  for (const [s, title] of p.titles) {
    s.disabled = isStatic;
    s.title = isStatic ? "a static page: re-pruning needs the kernel (open the graph in a notebook)" : title;
  }
  p.nodeSlider.value = String(model.get("node_threshold"));
  p.edgeSlider.value = String(model.get("edge_threshold"));
  p.nodeOut.textContent = model.get("node_threshold").toFixed(2);
  p.edgeOut.textContent = model.get("edge_threshold").toFixed(2);
  p.pinnedOnly.checked = Boolean(model.get("pinned_only"));
  p.bar.setModelId(model.get("llm_id") || "");
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
  p.canvas.setSelection({ paths, selected: sel, pinned, visible: only ? pinned : null });

  const typed = model.get("target") || "";
  const shown = model.get("shown_target") || "";
  showControls(p, typed, shown);

  const s = model.get("summary") || {};
  p.info.textContent = `${g.n} of ${s.n_nodes ?? "?"} nodes \u00b7 ${g.e} of ${s.n_edges ?? "?"} edges \u00b7 ` +
    `replacement ${score(s.replacement_score)} \u00b7 completeness ${score(s.completeness_score)} \u00b7 target: ` +
    (shown || `own logits (${g.logits.map((i) => JSON.stringify(nodeName(g, i, tokens))).join(", ")})`);
  const warnings: string[] = [];
  if (typed !== shown && model.get("busy")) warnings.push(`computing the graph for target ${typed || "own logits"}\u2026`);
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
  });
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
      redraw: () => canvas.redraw(),
    },
  });
}

export default { render };
