// Mirrors the synced traits of attrwidgets/widgets/graph_view.py::GraphView (k shown nodes, e kept edges), and
// decodes them into a GraphData: typed columns, and each node's in- and out-edges sorted by |weight| (CSR), which
// hover, the detail panel and path highlighting all read.
import type { TensorDict, ViewBase } from "../types";
import { decodeTensor } from "./tensor";

export interface GraphSummary {
  n_nodes?: number; // nodes of the whole graph
  n_edges?: number; // non-zero adjacency entries of the whole graph
  shown_nodes?: number;
  shown_edges?: number;
  replacement_score?: number | null;
  completeness_score?: number | null;
  prompt?: string; // UNTRUSTED
  model?: string;
  position?: number; // the position whose token the graph explains (its prompt's length)
  group?: string; // set when nodes are merged: the group mode, and the counts before merging
  ungrouped_nodes?: number;
  ungrouped_edges?: number;
}

export interface GraphViewModel extends ViewBase {
  n_layers: number; // logit nodes sit at layer n_layers, tokens at -1
  kinds: string[]; // kind names; node_data's kind row holds codes into it
  node_columns: string[]; // names of node_data's rows
  node_data: TensorDict | null; // (len(node_columns), k): kind, layer, position, feature, contrast, activation, influence, cumulative, members
  node_ids: string[]; // (k,)
  node_labels: string[]; // (k,) '' = none (UNTRUSTED)
  edges: TensorDict | null; // (3, e): source index, target index (into the shown nodes), signed weight
  summary: GraphSummary;
  node_threshold: number; // two-way
  edge_threshold: number; // two-way
  selected_logit: number; // index among the shown logit nodes, -1 none; two-way
  pinned_only: boolean; // two-way
  target: string; // the target asked for (typed, or a logit click); two-way
  shown_target: string; // the target the shown graph answers
  can_rebuild: boolean;
  group: string; // "none" | "heads" | "layers": merged nodes for a first look (graph_group.py); two-way
  target_positions: number[]; // (n_targets,) the source's target rows; selected_target picks the graph's prefix
  static_page?: boolean; // set only by the standalone page (widgets/graph_html.py): no kernel to re-prune
}

export interface GraphData {
  n: number; // shown nodes
  e: number; // kept edges
  kinds: string[];
  kind: Float32Array; // codes into kinds
  layer: Float32Array;
  position: Float32Array;
  feature: Float32Array;
  contrast: Float32Array;
  activation: Float32Array;
  influence: Float32Array;
  cumulative: Float32Array;
  members: Float32Array; // 1, or how many nodes a merged node stands for
  ids: string[];
  labels: string[];
  src: Int32Array;
  dst: Int32Array;
  weight: Float32Array;
  edgeData: Float32Array; // the (3, e) buffer as sent (its checksum says which bytes are drawn)
  inStart: Int32Array; // in-edges of node i: inList[inStart[i] .. inStart[i + 1]), by |weight| descending
  inList: Int32Array;
  outStart: Int32Array;
  outList: Int32Array;
  index: Map<string, number>; // node id -> shown index
  logits: number[]; // shown indices of the logit nodes, in order (selected_target indexes it)
  maxInfluence: number;
  maxWeight: number;
}

const COLUMNS = ["kind", "layer", "position", "feature", "contrast", "activation", "influence", "cumulative",
  "members"] as const;

function csr(n: number, key: Int32Array, weight: Float32Array): [Int32Array, Int32Array] {
  const start = new Int32Array(n + 1);
  for (let j = 0; j < key.length; j++) start[key[j] + 1]++;
  for (let i = 0; i < n; i++) start[i + 1] += start[i];
  const fill = start.slice(0, n);
  const list = new Int32Array(key.length);
  for (let j = 0; j < key.length; j++) list[fill[key[j]]++] = j;
  for (let i = 0; i < n; i++) {
    const part = list.subarray(start[i], start[i + 1]);
    part.sort((a, b) => Math.abs(weight[b]) - Math.abs(weight[a]));
  }
  return [start, list];
}

/** The traits as one GraphData; throws (shown in the warning banner) when the buffers disagree. */
export function decodeGraph(m: {get<K extends keyof GraphViewModel>(k: K): GraphViewModel[K]}): GraphData {
  const ids = m.get("node_ids") || [];
  const n = ids.length;
  const nodes = decodeTensor(m.get("node_data"));
  const names = m.get("node_columns") || [];
  if (nodes && (nodes.shape[0] !== names.length || nodes.shape[1] !== n)) {
    throw new Error(`node_data shape [${nodes.shape}] does not match ${names.length} columns x ${n} nodes`);
  }
  const col = (name: string) => {
    const r = names.indexOf(name);
    if (r < 0 || !nodes) return new Float32Array(n).fill(name === "contrast" ? -1 : name === "members" ? 1 : NaN);
    return nodes.data.subarray(r * n, (r + 1) * n);
  };
  const c = Object.fromEntries(COLUMNS.map((k) => [k, col(k)])) as Record<(typeof COLUMNS)[number], Float32Array>;
  const edges = decodeTensor(m.get("edges"));
  const e = edges ? edges.shape[1] ?? 0 : 0;
  const data = edges?.data ?? new Float32Array(0);
  const src = Int32Array.from(data.subarray(0, e));
  const dst = Int32Array.from(data.subarray(e, 2 * e));
  const weight = data.subarray(2 * e, 3 * e);
  for (let j = 0; j < e; j++) {
    if (!(src[j] >= 0 && src[j] < n && dst[j] >= 0 && dst[j] < n)) {
      throw new Error(`edge ${j} joins nodes ${src[j]} -> ${dst[j]}; only ${n} are shown`);
    }
  }
  const [inStart, inList] = csr(n, dst, weight);
  const [outStart, outList] = csr(n, src, weight);
  const kinds = m.get("kinds") || [];
  const logitCode = kinds.indexOf("logit");
  const logits: number[] = [];
  let maxInfluence = 0;
  for (let i = 0; i < n; i++) {
    if (c.kind[i] === logitCode) logits.push(i);
    if (Number.isFinite(c.influence[i])) maxInfluence = Math.max(maxInfluence, Math.abs(c.influence[i]));
  }
  let maxWeight = 0;
  for (let j = 0; j < e; j++) maxWeight = Math.max(maxWeight, Math.abs(weight[j]));
  const labels = m.get("node_labels") || [];
  return {
    n, e, kinds, ...c, ids, labels: ids.map((_, i) => labels[i] ?? ""), src, dst, weight, edgeData: data,
    inStart, inList, outStart, outList, index: new Map(ids.map((id, i) => [id, i])), logits, maxInfluence, maxWeight,
  };
}

export const kindOf = (g: GraphData, i: number): string => g.kinds[g.kind[i]] ?? "?";

/** What a node is called: its label, else a name made from its kind (token text for tokens). */
export function nodeName(g: GraphData, i: number, tokens: string[]): string {
  if (g.labels[i]) return g.labels[i];
  const kind = kindOf(g, i);
  const pos = g.position[i];
  if (kind === "token") return tokens[pos] ?? `#${g.feature[i]}`;
  if (kind === "logit") return g.contrast[i] >= 0 ? `#${g.feature[i]} - #${g.contrast[i]}` : `#${g.feature[i]}`;
  if (kind === "error") return `error L${g.layer[i]}`;
  if (kind === "attention") return g.feature[i] < 0 ? `heads L${g.layer[i]}` : `head ${g.feature[i]} L${g.layer[i]}`;
  if (kind === "layer") return `L${g.layer[i]}`;
  if (kind === "mlp") return `MLP L${g.layer[i]}`;
  return `F${g.feature[i]} L${g.layer[i]}`;
}

/** The target box text a click on logit node i writes ("#a", or "#a - #b" for a contrast). */
export function logitTarget(g: GraphData, i: number): string {
  return g.contrast[i] >= 0 ? `#${g.feature[i]} - #${g.contrast[i]}` : `#${g.feature[i]}`;
}

/** Up to `k` edges into (dir "in") or out of node i, strongest first. */
export function topEdges(g: GraphData, i: number, dir: "in" | "out", k: number): number[] {
  const [start, list] = dir === "in" ? [g.inStart, g.inList] : [g.outStart, g.outList];
  return Array.from(list.subarray(start[i], Math.min(start[i + 1], start[i] + k)));
}

export function edgeCount(g: GraphData, i: number, dir: "in" | "out"): number {
  const start = dir === "in" ? g.inStart : g.outStart;
  return start[i + 1] - start[i];
}

/** The nodes a layer / head selection (selected_layer, selected_head: a head clicked in a linked HeadGrid) lights
 * up: that head's nodes in its layer, or, grouped, the merged node holding it; a layer alone lights the layer's
 * nodes; layer -1 lights none. 1 = lit. */
export function litNodes(g: GraphData, layer: number, head: number): Uint8Array {
  const lit = new Uint8Array(g.n);
  if (!(layer >= 0)) return lit;
  for (let i = 0; i < g.n; i++) {
    if (g.layer[i] !== layer) continue;
    const kind = kindOf(g, i);
    if (kind === "token" || kind === "logit") continue;
    const merged = kind === "layer" || (kind === "attention" && g.feature[i] < 0);
    if (head < 0 || merged || (kind === "attention" && g.feature[i] === head)) lit[i] = 1;
  }
  return lit;
}
