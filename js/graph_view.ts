// GraphView: a pruned attribution graph on one canvas. Nodes by position (x) and layer (y), tokens at the bottom,
// logits on top; size by influence, edges by |weight| and sign; pan (drag) and zoom (wheel). Click a node: its
// upstream and downstream paths highlight and the detail panel lists its strongest edges; shift-click pins it;
// click a logit: the kernel rebuilds the graph for it alone. The sliders re-prune in the kernel.
// Python side: attrwidgets/widgets/graph_view.py (same trait names, see lib/graph_model.ts GraphViewModel).
import type { RenderProps } from "./types";
import { checksumFloat32 } from "./lib/checksum";
import { legendGradient } from "./lib/colour";
import { debounce, h, onCommit } from "./lib/dom";
import { GraphCanvas } from "./lib/graph_canvas";
import { describeNode, renderDetail } from "./lib/graph_detail";
import { layoutGraph, type Layout } from "./lib/graph_layout";
import { decodeGraph, kindOf, logitTarget, nodeName, type GraphData, type GraphViewModel } from "./lib/graph_model";
import { pathsThrough } from "./lib/graph_paths";
import { injectGraphStyle } from "./lib/graph_style";
import { labeled, responsiveToolbar, watchWidth } from "./lib/layout";
import { busyIndicator, listen, viewStatus } from "./lib/status";
import { injectStyle } from "./lib/theme";

const SAVE_DEBOUNCE_MS = 150;
const DATA_TRAITS = ["tokens", "n_layers", "kinds", "node_columns", "node_data", "node_ids", "node_labels", "edges"] as const;
const REDRAW_TRAITS = [
  ...DATA_TRAITS, "summary", "node_threshold", "edge_threshold", "selected_node", "selected_logit", "pinned",
  "pinned_only", "target", "shown_target", "can_rebuild", "llm_id",
] as const;

function slider(min: number, step: number, onInput: (v: number) => void): [HTMLInputElement, HTMLOutputElement] {
  const input = h("input");
  Object.assign(input, { type: "range", min: String(min), max: "1", step: String(step) });
  const out = h("output");
  input.addEventListener("input", () => onInput(Number(input.value)));
  return [input, out];
}

const score = (v: number | null | undefined) => (typeof v === "number" ? v.toFixed(3) : "\u2014");

function render({ model, el }: RenderProps<GraphViewModel>) {
  const root = h("div", "aw-root aw-graph-view");
  if (el.closest(".aw-standalone-host")) root.classList.add("aw-standalone");
  root.dataset.lmSuppressShortcuts = "true"; // keys on the canvas (+, -, 0, Esc) belong to the graph
  injectStyle(root);
  injectGraphStyle(root);
  const save = debounce(() => model.save_changes(), SAVE_DEBOUNCE_MS);
  function write<K extends keyof GraphViewModel>(key: K, value: GraphViewModel[K]): void {
    if (JSON.stringify(model.get(key)) === JSON.stringify(value)) return;
    model.set(key, value);
    save();
  }

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
  fitButton.addEventListener("click", () => canvas.fit());
  const busy = busyIndicator();
  const toolbar = responsiveToolbar(root, {
    primary: [targetLabel],
    secondary: [nodeLabel, edgeLabel, labeled("pinned only", pinnedOnly), fitButton], status: [busy],
  });

  const tooltip = h("div", "aw-tooltip");
  const status = viewStatus(root, model, () => draw(), tooltip);
  const { errorBanner, warnBanner } = status;
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
    pick: (i, e) => pick(i, e.shiftKey),
    describe: (i) => (current ? describeNode(current.g, i, tokenTexts()) : ""),
  });
  box.appendChild(canvas.canvas);
  root.append(toolbar.element, errorBanner, warnBanner, info, hint, box, legend, detail, tooltip);
  el.appendChild(root);

  const size = () => {
    const w = Math.max(160, (root.clientWidth || 640) - 14);
    canvas.resize(w, root.classList.contains("aw-narrow") ? 340 : Math.min(560, Math.max(320, Math.round(w * 0.55))));
  };
  const unwatch = watchWidth(root, size);
  size();

  // The graph's nodes name their tokens by text (the token records' decoded text, UNTRUSTED: textContent only).
  const tokenTexts = (): string[] => (model.get("tokens") || []).map((t) => t.clean);

  // Decoded data and its layout are rebuilt only when the data traits change, not on a selection.
  let current: { g: GraphData; layout: Layout; from: unknown[] } | null = null;
  let shownTarget: string | null = null;
  function data(): { g: GraphData; layout: Layout } {
    const from = DATA_TRAITS.map((k) => model.get(k));
    if (!current || from.some((v, i) => v !== current?.from[i])) {
      const g = decodeGraph(model);
      const tokens = tokenTexts();
      current = { g, layout: layoutGraph(g, tokens.length, model.get("n_layers") || 0), from };
      const refit = shownTarget !== model.get("shown_target");
      shownTarget = model.get("shown_target");
      canvas.setData(g, current.layout, tokens, refit);
    }
    return current;
  }

  function pick(i: number, shift: boolean): void {
    const g = current?.g;
    if (!g || i < 0) {
      write("selected_node", "");
      write("selected_logit", -1);
      return;
    }
    const id = g.ids[i];
    if (shift) {
      const pins = model.get("pinned") || [];
      write("pinned", pins.includes(id) ? pins.filter((p) => p !== id) : [...pins, id]);
      return;
    }
    const again = model.get("selected_node") === id;
    write("selected_node", again ? "" : id);
    write("selected_logit", again ? -1 : g.logits.indexOf(i));
    // A logit of a graph with several: the kernel rebuilds the graph for this one alone.
    if (!again && kindOf(g, i) === "logit" && g.logits.length > 1 && model.get("can_rebuild")) {
      target.value = logitTarget(g, i);
      write("target", target.value);
    }
  }

  function draw() {
    const { g } = data();
    const tokens = tokenTexts();
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
    canvas.setSelection({ paths, selected: sel, pinned, visible: only ? pinned : null });

    const typed = model.get("target") || "";
    const shown = model.get("shown_target") || "";
    if (document.activeElement !== target) target.value = typed;
    const isStatic = Boolean(model.get("static_page"));
    own.disabled = !typed && !shown;
    target.disabled = !model.get("can_rebuild");
    target.title = model.get("can_rebuild") ? 'other logit target(s): a token (" Paris"), a vocab id (#1234), ' +
      "or a contrast (Paris - London); Enter computes" : isStatic ? "a static page: other targets need the kernel"
      : "this graph has no model attached: it cannot be recomputed";
    for (const [s, title] of titles) {
      s.disabled = isStatic;
      s.title = isStatic ? "a static page: re-pruning needs the kernel (open the graph in a notebook)" : title;
    }
    nodeSlider.value = String(model.get("node_threshold"));
    edgeSlider.value = String(model.get("edge_threshold"));
    nodeOut.textContent = model.get("node_threshold").toFixed(2);
    edgeOut.textContent = model.get("edge_threshold").toFixed(2);
    pinnedOnly.checked = Boolean(model.get("pinned_only"));
    toolbar.setModelId(model.get("llm_id") || "");

    const s = model.get("summary") || {};
    info.textContent = `${g.n} of ${s.n_nodes ?? "?"} nodes \u00b7 ${g.e} of ${s.n_edges ?? "?"} edges \u00b7 ` +
      `replacement ${score(s.replacement_score)} \u00b7 completeness ${score(s.completeness_score)} \u00b7 target: ` +
      (shown || `own logits (${g.logits.map((i) => JSON.stringify(nodeName(g, i, tokens))).join(", ")})`);
    const warnings: string[] = [];
    if (typed !== shown && model.get("busy")) warnings.push(`computing the graph for target ${typed || "own logits"}\u2026`);
    if (sid && sel < 0) {
      warnings.push(`node ${sid} is not in the pruned graph at these thresholds: raise the node threshold, or pin it.`);
    }
    if (model.get("pinned_only") && !pinnedIds.length) warnings.push("no pinned nodes yet: shift-click nodes to pin them.");
    warnBanner.textContent = warnings.join("\n");

    renderDetail(detail, sel < 0 ? null : {
      g, node: sel, tokens, pinned: pinned[sel] === 1,
      onSelect: (j) => pick(j, false),
      onPin: () => pick(sel, true),
      onClose: () => pick(-1, false),
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

  // For tests and the curious: where a node is drawn, in canvas and in page coordinates.
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

  return listen(model, REDRAW_TRAITS, status, () => save.cancel(), unwatch, () => toolbar.dispose());
}

export default { render };
