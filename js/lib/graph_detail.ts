// What the GraphView says about one node: the hover tooltip's text, and the detail panel of the selected node
// (its numbers, a pin button, and its strongest input and output edges, each a link to the node at its other
// end). Labels and token texts are untrusted: textContent only.
import { colourFor, formatValue } from "./colour";
import { clickable, h, showWhitespace } from "./dom";
import { edgeCount, kindOf, nodeName, topEdges, type GraphData } from "./graph_model";

const TOOLTIP_EDGES = 3;
const PANEL_EDGES = 8;

function where(g: GraphData, i: number, tokens: string[]): string {
  const kind = kindOf(g, i);
  const pos = g.position[i];
  const token = tokens[pos] !== undefined ? ` ${JSON.stringify(showWhitespace(tokens[pos]))}` : "";
  const layer = kind === "token" ? "embedding" : kind === "logit" ? "logit" : `L${g.layer[i]}`;
  const head = g.feature[i] < 0 ? "heads" : `head ${g.feature[i]}`;
  const feature = kind === "feature" ? ` \u00b7 feature ${g.feature[i]}` : kind === "attention" ? ` \u00b7 ${head}` : "";
  const merged = g.members[i] > 1 ? ` \u00b7 ${g.members[i]} nodes merged` : "";
  return `${kind === "layer" ? "merged layer" : kind} \u00b7 ${layer} \u00b7 pos ${pos}${token}${feature}${merged}`;
}

function edgeLine(g: GraphData, j: number, dir: "in" | "out", tokens: string[]): string {
  const other = dir === "in" ? g.src[j] : g.dst[j];
  const arrow = dir === "in" ? "\u2190" : "\u2192";
  return `${formatValue(g.weight[j]).padStart(9)} ${arrow} ${nodeName(g, other, tokens)} (${shortWhere(g, other)})`;
}

function shortWhere(g: GraphData, i: number): string {
  const kind = kindOf(g, i);
  const layer = kind === "token" ? "emb" : kind === "logit" ? "logit" : `L${g.layer[i]}`;
  return `${layer} @${g.position[i]}`;
}

/** The tooltip: label, kind / layer / position, activation and influence, the strongest edges each way. */
export function describeNode(g: GraphData, i: number, tokens: string[]): string {
  const lines = [nodeName(g, i, tokens), where(g, i, tokens),
    `activation ${formatValue(g.activation[i])} \u00b7 influence ${formatValue(g.influence[i])}`];
  for (const dir of ["in", "out"] as const) {
    const n = edgeCount(g, i, dir);
    if (!n) continue;
    lines.push(`${dir === "in" ? "inputs" : "outputs"} (${n}):`);
    for (const j of topEdges(g, i, dir, TOOLTIP_EDGES)) lines.push(edgeLine(g, j, dir, tokens));
  }
  return lines.join("\n");
}

export interface DetailSpec {
  g: GraphData;
  node: number; // shown index
  tokens: string[];
  pinned: boolean;
  onSelect(node: number): void;
  onPin(): void;
  onClose(): void;
}

function edgeList(spec: DetailSpec, dir: "in" | "out"): HTMLElement {
  const { g, node, tokens } = spec;
  const box = h("div", `aw-graph-edges aw-graph-${dir}`);
  const total = edgeCount(g, node, dir);
  box.append(h("div", "aw-graph-edges-title", `${dir === "in" ? "top inputs" : "top outputs"} (${Math.min(total,
    PANEL_EDGES)} of ${total})`));
  for (const j of topEdges(g, node, dir, PANEL_EDGES)) {
    const other = dir === "in" ? g.src[j] : g.dst[j];
    const row = h("div", "aw-graph-edge");
    row.dataset.node = g.ids[other];
    const swatch = h("span", "aw-graph-swatch");
    swatch.style.background = colourFor(Math.sign(g.weight[j]), "signed");
    row.append(swatch, h("span", "aw-graph-weight", formatValue(g.weight[j])),
      h("span", "aw-graph-name", `${dir === "in" ? "\u2190" : "\u2192"} ${nodeName(g, other, tokens)}`),
      h("span", "aw-graph-where", shortWhere(g, other)));
    row.title = `${edgeLine(g, j, dir, tokens).trim()}\nclick to select it`;
    clickable(row, () => spec.onSelect(other));
    box.append(row);
  }
  if (!total) box.append(h("div", "aw-graph-none", dir === "in" ? "no kept inputs" : "no kept outputs"));
  return box;
}

/** Fill `panel` for the selected node; `note` (and no node) says why nothing is shown. */
export function renderDetail(panel: HTMLElement, spec: DetailSpec | null, note = ""): void {
  panel.replaceChildren();
  panel.classList.toggle("aw-hidden", !spec && !note);
  if (!spec) {
    if (note) panel.append(h("div", "aw-graph-none", note));
    return;
  }
  const { g, node, tokens } = spec;
  const head = h("div", "aw-detail-head");
  const pin = h("button", "aw-graph-pin", spec.pinned ? "unpin" : "pin");
  pin.type = "button";
  pin.title = spec.pinned ? "remove from the pinned subgraph" : "add to the pinned subgraph (shift-click a node does the same)";
  pin.addEventListener("click", () => spec.onPin());
  const close = h("button", "aw-detail-close", "\u00d7");
  close.type = "button";
  close.title = "clear the selection (Esc)";
  close.addEventListener("click", () => spec.onClose());
  head.append(h("span", "aw-detail-title", nodeName(g, node, tokens)), h("span", "aw-badge", g.ids[node]), pin, close);
  const stats = h("div", "aw-graph-stats",
    `${where(g, node, tokens)} \u00b7 activation ${formatValue(g.activation[node])} \u00b7 influence ` +
    `${formatValue(g.influence[node])} \u00b7 cumulative ${formatValue(g.cumulative[node])}`);
  const lists = h("div", "aw-graph-lists");
  lists.append(edgeList(spec, "in"), edgeList(spec, "out"));
  panel.append(head, stats, lists);
}
