// Where each node of the pruned graph sits, in world units (pan and zoom map them to the screen): x by position
// (one column per prompt token, widened to fit its busiest cell), y by layer (tokens at the bottom row, logits
// on the top row); the nodes of one (layer, position) cell side by side, ordered by kind then feature.
// Fitting scales x and y alike, and a model has many more layers than a prompt has tokens, so columns of their
// own width would leave most of a wide view empty: given the view's aspect (width / height), the columns share
// the extra width, and the fitted graph spans the view's width.
import type { GraphData } from "./graph_model";

export const ROW_H = 64; // world units per layer row
const SLOT = 18; // width per node in a crowded cell
const MAX_SLOT = 5 * SLOT; // at most this far apart in a wide one
const MIN_COL = 56; // a column is at least this wide (room for its token's text)
const PAD = 8;
const R_MIN = 2.5;
const R_MAX = 9;
const END_R = 5;

export interface Layout {
  x: Float32Array; // (n,) node centres
  y: Float32Array;
  r: Float32Array; // (n,) radius: grows with the node's influence
  rows: number; // n_layers + 2: tokens, layers 0..L-1, logits
  columns: { x0: number; x1: number }[]; // one per position
  width: number;
  height: number;
}

export const rowOf = (layer: number, nLayers: number) => Math.min(nLayers + 1, Math.max(0, layer + 1));

export function rowY(row: number, rows: number): number {
  return (rows - 1 - row) * ROW_H + ROW_H / 2;
}

/** aspect: the width / height the graph is fitted into (0: the columns' own widths). */
export function layoutGraph(g: GraphData, nTokens: number, nLayers: number, aspect = 0): Layout {
  const rows = nLayers + 2;
  let t = nTokens;
  for (let i = 0; i < g.n; i++) if (Number.isFinite(g.position[i])) t = Math.max(t, g.position[i] + 1);
  const cells = new Map<number, number[]>(); // row * t + position -> nodes
  for (let i = 0; i < g.n; i++) {
    const p = Math.max(0, g.position[i] | 0);
    const key = rowOf(g.layer[i], nLayers) * t + p;
    const list = cells.get(key);
    if (list) list.push(i);
    else cells.set(key, [i]);
  }
  const busiest = new Int32Array(t);
  for (const [key, list] of cells) busiest[key % t] = Math.max(busiest[key % t], list.length);
  const own = Array.from(busiest, (b) => Math.max(MIN_COL, b * SLOT + PAD));
  const natural = own.reduce((a, b) => a + b, 0);
  const extra = t > 0 && aspect > 0 ? Math.max(0, aspect * rows * ROW_H - natural) / t : 0;
  const columns: { x0: number; x1: number }[] = [];
  let x0 = 0;
  for (let p = 0; p < t; p++) {
    const w = own[p] + extra;
    columns.push({ x0, x1: x0 + w });
    x0 += w;
  }
  const x = new Float32Array(g.n);
  const y = new Float32Array(g.n);
  const r = new Float32Array(g.n);
  const infl = g.maxInfluence > 0 ? g.maxInfluence : 1;
  const kinds = g.kinds;
  for (const [key, list] of cells) {
    const row = Math.floor(key / t);
    const col = columns[key % t];
    list.sort((a, b) => g.kind[a] - g.kind[b] || g.feature[a] - g.feature[b] || a - b);
    // a cell's nodes side by side around the column's middle, spread out in a wide column but kept together
    const slot = Math.min((col.x1 - col.x0 - PAD) / list.length, MAX_SLOT);
    const mid = (col.x0 + col.x1) / 2;
    list.forEach((i, s) => {
      x[i] = mid + (s + 0.5 - list.length / 2) * slot;
      y[i] = rowY(row, rows);
      const share = Number.isFinite(g.influence[i]) ? Math.sqrt(Math.min(1, Math.abs(g.influence[i]) / infl)) : 0;
      // Tokens and logits are the graph's ends: never smaller than a mid-sized node, whatever their influence.
      const floor = kinds[g.kind[i]] === "token" || kinds[g.kind[i]] === "logit" ? END_R : R_MIN;
      r[i] = Math.min(Math.max(floor, R_MIN + (R_MAX - R_MIN) * share), Math.max(R_MIN, slot / 2 - 1));
    });
  }
  return { x, y, r, rows, columns, width: x0, height: rows * ROW_H };
}
