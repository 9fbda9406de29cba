// The paths through a selected node: everything upstream of it (its sources, their sources, ...) and everything
// downstream, over the kept edges. A breadth-first walk on the CSR lists of graph_model.ts: O(nodes + edges).
import type { GraphData } from "./graph_model";

export interface Paths {
  node: number; // the selected node (shown index); -1 none
  upstream: Uint8Array; // 1 for nodes with a path into `node` (not `node` itself)
  downstream: Uint8Array; // 1 for nodes reached from `node`
  onPath: Uint8Array; // 1 for nodes on either side, and `node`
  edges: Uint8Array; // 1 for edges on a path through `node`
  counts: { upstream: number; downstream: number; edges: number };
}

function walk(g: GraphData, from: number, dir: "in" | "out"): Uint8Array {
  const seen = new Uint8Array(g.n);
  const [start, list, other] = dir === "in" ? [g.inStart, g.inList, g.src] : [g.outStart, g.outList, g.dst];
  const queue = [from];
  for (let q = 0; q < queue.length; q++) {
    const i = queue[q];
    for (let k = start[i]; k < start[i + 1]; k++) {
      const j = other[list[k]];
      if (!seen[j] && j !== from) {
        seen[j] = 1;
        queue.push(j);
      }
    }
  }
  return seen;
}

export function pathsThrough(g: GraphData, node: number): Paths | null {
  if (node < 0 || node >= g.n) return null;
  const upstream = walk(g, node, "in");
  const downstream = walk(g, node, "out");
  const onPath = new Uint8Array(g.n);
  let nu = 0;
  let nd = 0;
  for (let i = 0; i < g.n; i++) {
    nu += upstream[i];
    nd += downstream[i];
    onPath[i] = upstream[i] | downstream[i];
  }
  onPath[node] = 1;
  // An edge is on a path through `node` when both ends are upstream (or the target is node), or both ends are
  // downstream (or the source is node). Sibling edges between two upstream nodes count: they lie on a path too.
  const up = (i: number) => upstream[i] === 1 || i === node;
  const down = (i: number) => downstream[i] === 1 || i === node;
  const edges = new Uint8Array(g.e);
  let ne = 0;
  for (let j = 0; j < g.e; j++) {
    const s = g.src[j];
    const t = g.dst[j];
    if ((upstream[s] && up(t)) || (down(s) && downstream[t])) {
      edges[j] = 1;
      ne++;
    }
  }
  return { node, upstream, downstream, onPath, edges, counts: { upstream: nu, downstream: nd, edges: ne } };
}
