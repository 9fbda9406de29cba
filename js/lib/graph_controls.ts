// The GraphView's toolbar: the logit target box and its "own logits" button, the grouped mode (merged heads or
// layers for a first look), the two pruning sliders, pinned-only and fit; and how they follow the model. The
// target box and the mode stay in the row; the rest goes to the menu when the view is narrow.
import { h, onCommit } from "./dom";
import type { GraphViewModel } from "./graph_model";
import { labeled } from "./layout";
import type { View } from "./view_base";

type Graph = View<GraphViewModel>;

// The modes of GraphView.group (attrwidgets/widgets/graph_group.py GROUP_MODES), with what each shows.
const GROUPS: [string, string, string][] = [
  ["none", "every node", "every kept node on its own"],
  ["heads", "heads merged", "the heads of one layer at one position merged into one node"],
  ["layers", "layers merged", "every node of one layer at one position merged into one node"],
];

function slider(min: number, step: number, onInput: (v: number) => void): [HTMLInputElement, HTMLOutputElement] {
  const input = h("input");
  Object.assign(input, { type: "range", min: String(min), max: "1", step: String(step) });
  const out = h("output");
  input.addEventListener("input", () => onInput(Number(input.value)));
  return [input, out];
}

export function graphControls(view: Graph, fit: () => void) {
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
  const group = h("select");
  group.className = "aw-graph-group";
  for (const [value, text, title] of GROUPS) {
    const option = h("option", "", text);
    Object.assign(option, { value, title });
    group.append(option);
  }
  group.addEventListener("change", () => write("group", group.value));
  const groupLabel = labeled("show", group);
  const [nodeSlider, nodeOut] = slider(0.05, 0.01, (v) => write("node_threshold", v));
  const [edgeSlider, edgeOut] = slider(0.1, 0.01, (v) => write("edge_threshold", v));
  const nodeLabel = labeled("nodes", nodeSlider);
  const edgeLabel = labeled("edges", edgeSlider);
  for (const [label, out] of [[nodeLabel, nodeOut], [edgeLabel, edgeOut]] as const) {
    label.classList.add("aw-graph-threshold");
    label.append(out);
  }
  const titles = new Map<HTMLInputElement | HTMLSelectElement, string>([
    [nodeSlider, "node threshold: keep nodes up to this share of the cumulative influence"],
    [edgeSlider, "edge threshold: keep edges up to this share of the cumulative influence"],
    [group, "merge nodes for a first look: heads of a layer, or whole layers, at each position; edges summed"],
  ]);
  const pinnedOnly = h("input");
  pinnedOnly.type = "checkbox";
  pinnedOnly.addEventListener("change", () => write("pinned_only", pinnedOnly.checked));
  const fitButton = h("button", "", "fit");
  fitButton.type = "button";
  fitButton.title = "show the whole graph (key 0)";
  fitButton.addEventListener("click", fit);
  const bar = view.toolbar({
    primary: [targetLabel, groupLabel],
    secondary: [nodeLabel, edgeLabel, labeled("pinned only", pinnedOnly), fitButton],
  });
  return { bar, target, own, group, nodeSlider, nodeOut, edgeSlider, edgeOut, titles, pinnedOnly };
}

export type GraphControls = ReturnType<typeof graphControls>;

/** The toolbar follows the model; a static page (no kernel) disables what needs one. */
export function showControls(c: GraphControls, model: Graph["model"], typed: string, shown: string): void {
  if (document.activeElement !== c.target) c.target.value = typed;
  const isStatic = Boolean(model.get("static_page"));
  c.own.disabled = !typed && !shown;
  c.target.disabled = !model.get("can_rebuild");
  c.target.title = model.get("can_rebuild") ? 'other logit target(s): a token (" Paris"), a vocab id (#1234), ' +
    "or a contrast (Paris - London); Enter computes" : isStatic ? "a static page: other targets need the kernel"
    : "this graph has no model attached: it cannot be recomputed";
  for (const [control, title] of c.titles) {
    control.disabled = isStatic;
    control.title = isStatic ? "a static page: re-pruning and grouping need the kernel (open the graph in a " +
      "notebook)" : title;
  }
  c.group.value = model.get("group") || "none";
  c.nodeSlider.value = String(model.get("node_threshold"));
  c.edgeSlider.value = String(model.get("edge_threshold"));
  c.nodeOut.textContent = model.get("node_threshold").toFixed(2);
  c.edgeOut.textContent = model.get("edge_threshold").toFixed(2);
  c.pinnedOnly.checked = Boolean(model.get("pinned_only"));
  c.bar.setModelId(model.get("llm_id") || "");
}
