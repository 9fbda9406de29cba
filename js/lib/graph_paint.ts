// The graph's marks on its canvas, through the pan/zoom transform: edges first (batched into one stroke per sign x
// weight level x emphasis, and culled to the view, so a few thousand redraw in a frame or two; opacity and width
// by weight, graph_edges.ts), then the nodes (a shape per kind, size by influence; those of the selected layer or
// head ringed), the token texts under the bottom row and the layer axis on the left.
// All text is canvas text (fillText), never markup: token strings are untrusted.
import { colourFor } from "./colour";
import { EDGE_LEVELS, edgeInk, edgeLevel } from "./graph_edges";
import { showWhitespace } from "./dom";
import type { GraphData } from "./graph_model";
import { kindOf } from "./graph_model";
import { ROW_H, rowY, type Layout } from "./graph_layout";
import type { Paths } from "./graph_paths";
import type { Transform } from "./pan_zoom";

export const AXIS_W = 40; // the layer axis strip on the left (screen px)
const DIMMED = 0.07; // alpha of what is off the selected node's paths
const CURVE_LIMIT = 1500; // edges in view above which they are drawn straight
const KIND_FILL: Record<string, string> = {
  feature: "#26a69a", error: "#9e9e9e", token: "#78909c", logit: "", attention: "#ffa726", mlp: "#5c6bc0",
  layer: "#8d6e63",
};
const FONT = "11px ui-monospace, SFMono-Regular, Menlo, monospace";

export interface Colours {
  fg: string;
  dim: string;
  accent: string;
  bg: string;
}

export interface PaintState {
  paths: Paths | null;
  selected: number; // shown index, -1 none
  hover: number;
  pinned: Uint8Array; // (n,) 1 = pinned
  visible: Uint8Array | null; // pinned_only: the nodes drawn; null = all
  lit: Uint8Array | null; // the selected layer's or head's nodes (graph_model.ts litNodes); null = none
  colours: Colours;
}

/** A node's radius on screen: grows with zoom up to twice its world size; never smaller than at half size, nor
 * than 2.5 px (a 30-layer graph fitted into a view is drawn at a quarter of its world size, and its nodes must stay
 * visible and a target for the mouse). */
export const screenRadius = (r: number, k: number) => Math.max(2.5, Math.min(2 * r, r * Math.max(k, 0.5)));

export function paintEdges(ctx: CanvasRenderingContext2D, g: GraphData, L: Layout, t: Transform, s: PaintState,
  vw: number, vh: number): number {
  // buckets[emphasis][sign][level] -> edge indices
  const buckets: number[][][][] = [0, 1].map(() => [0, 1].map(() => Array.from({ length: EDGE_LEVELS }, () => [])));
  let drawn = 0;
  const lift = ROW_H * 0.35 * t.k;
  for (let j = 0; j < g.e; j++) {
    const a = g.src[j];
    const b = g.dst[j];
    if (s.visible && !(s.visible[a] && s.visible[b])) continue;
    const x0 = L.x[a] * t.k + t.x;
    const x1 = L.x[b] * t.k + t.x;
    const y0 = L.y[a] * t.k + t.y;
    const y1 = L.y[b] * t.k + t.y;
    if (Math.max(x0, x1) < 0 || Math.min(x0, x1) > vw || Math.max(y0, y1) < -lift || Math.min(y0, y1) > vh) continue;
    const on = s.paths ? s.paths.edges[j] : 1;
    buckets[on][g.weight[j] >= 0 ? 1 : 0][edgeLevel(g.weight[j], g.maxWeight)].push(j);
    drawn++;
  }
  // Curves cost ~3x lines to rasterize (software canvas: 120 vs 45 ms for 5,700 edges); past CURVE_LIMIT edges in
  // view, straight lines keep a redraw within a few frames. Zooming in brings the curves back.
  const curved = drawn <= CURVE_LIMIT;
  ctx.lineCap = "round";
  for (const on of [0, 1]) {
    for (const sign of [0, 1]) {
      for (let level = 0; level < EDGE_LEVELS; level++) {
        const list = buckets[on][sign][level];
        if (!list.length) continue;
        const ink = edgeInk(level);
        ctx.strokeStyle = colourFor(sign ? 1 : -1, "signed");
        ctx.globalAlpha = on ? ink.alpha : DIMMED;
        ctx.lineWidth = on ? ink.width : 0.75; // dimmed: thin, whatever the weight
        ctx.beginPath();
        for (const j of list) {
          const x0 = L.x[g.src[j]] * t.k + t.x;
          const y0 = L.y[g.src[j]] * t.k + t.y;
          const x1 = L.x[g.dst[j]] * t.k + t.x;
          const y1 = L.y[g.dst[j]] * t.k + t.y;
          const same = Math.abs(y1 - y0) < 1; // same row (attention -> MLP): always an arc, or it would hide
          ctx.moveTo(x0, y0);
          if (curved || same) {
            const my = same ? y0 - lift : (y0 + y1) / 2;
            ctx.bezierCurveTo(x0, my, x1, my, x1, y1);
          } else ctx.lineTo(x1, y1);
        }
        ctx.stroke();
      }
    }
  }
  ctx.globalAlpha = 1;
  return drawn;
}

function shape(ctx: CanvasRenderingContext2D, kind: string, x: number, y: number, r: number): void {
  ctx.beginPath();
  if (kind === "token" || kind === "logit") ctx.rect(x - r, y - r, 2 * r, 2 * r);
  else if (kind === "layer") ctx.roundRect(x - 1.3 * r, y - r, 2.6 * r, 2 * r, r * 0.6); // a merged layer: a pill
  else if (kind === "error") {
    ctx.moveTo(x, y - r * 1.2);
    ctx.lineTo(x + r * 1.2, y);
    ctx.lineTo(x, y + r * 1.2);
    ctx.lineTo(x - r * 1.2, y);
    ctx.closePath();
  } else if (kind === "attention") {
    ctx.moveTo(x, y - r * 1.2);
    ctx.lineTo(x + r * 1.1, y + r * 0.8);
    ctx.lineTo(x - r * 1.1, y + r * 0.8);
    ctx.closePath();
  } else ctx.arc(x, y, r, 0, 2 * Math.PI);
}

export function paintNodes(ctx: CanvasRenderingContext2D, g: GraphData, L: Layout, t: Transform, s: PaintState,
  vw: number, vh: number): void {
  const c = s.colours;
  for (let i = 0; i < g.n; i++) {
    if (s.visible && !s.visible[i]) continue;
    const x = L.x[i] * t.k + t.x;
    const y = L.y[i] * t.k + t.y;
    const r = screenRadius(L.r[i], t.k);
    if (x < -r - 4 || x > vw + r + 4 || y < -r - 4 || y > vh + r + 4) continue;
    const kind = kindOf(g, i);
    ctx.globalAlpha = s.paths && !s.paths.onPath[i] ? 0.22 : 1;
    shape(ctx, kind, x, y, r);
    ctx.fillStyle = KIND_FILL[kind] || c.accent;
    if (kind === "error") {
      ctx.fillStyle = c.bg;
      ctx.fill();
      ctx.strokeStyle = c.dim;
      ctx.lineWidth = 1.2;
      ctx.stroke();
    } else {
      ctx.fill();
      ctx.strokeStyle = c.bg;
      ctx.lineWidth = 0.8;
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
    if (s.pinned[i]) { // a pin: a dark ring and a dot above the node
      ctx.strokeStyle = c.fg;
      ctx.lineWidth = 1.5;
      shape(ctx, kind, x, y, r + 2);
      ctx.stroke();
      ctx.fillStyle = c.fg;
      ctx.beginPath();
      ctx.arc(x, y - r - 5, 2.2, 0, 2 * Math.PI);
      ctx.fill();
    }
    if (s.lit && s.lit[i]) { // the selected layer's or head's node: a ring in the accent colour
      ctx.strokeStyle = c.accent;
      ctx.lineWidth = 2;
      shape(ctx, kind, x, y, r + 2.5);
      ctx.stroke();
    }
    if (i === s.selected || i === s.hover) {
      ctx.strokeStyle = i === s.selected ? c.accent : c.fg;
      ctx.lineWidth = i === s.selected ? 2.5 : 1;
      shape(ctx, kind, x, y, r + (i === s.selected ? 4 : 3));
      ctx.stroke();
    }
  }
}

const cut = (text: string, n: number) => (text.length > n ? `${text.slice(0, Math.max(1, n - 1))}\u2026` : text);

/** Token texts under the bottom row, one per column: level when the column has room, else rotated. */
export function paintTokens(ctx: CanvasRenderingContext2D, tokens: string[], L: Layout, t: Transform,
  c: Colours, vw: number, selectedPos: number): void {
  const y = rowY(0, L.rows) * t.k + t.y + Math.max(6, 10 * Math.min(2, t.k)) + 4;
  ctx.font = FONT;
  ctx.textBaseline = "top";
  L.columns.forEach((col, p) => {
    const x0 = col.x0 * t.k + t.x;
    const x1 = col.x1 * t.k + t.x;
    if (x1 < AXIS_W || x0 > vw || p >= tokens.length) return;
    const text = showWhitespace(tokens[p]);
    const room = x1 - x0;
    ctx.fillStyle = p === selectedPos ? c.accent : c.fg;
    if (room >= 7 * Math.min(text.length, 6) + 4) {
      ctx.textAlign = "center";
      ctx.fillText(cut(text, Math.floor((room - 4) / 7)), (x0 + x1) / 2, y);
    } else {
      ctx.save();
      ctx.translate((x0 + x1) / 2 + 4, y);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "right";
      ctx.fillText(cut(text, 10), 0, 0);
      ctx.restore();
    }
  });
}

/** Row names on a strip that stays at the left edge: "logit" on top, then L{n-1} .. L0, "emb" at the bottom. */
export function paintAxis(ctx: CanvasRenderingContext2D, L: Layout, t: Transform, c: Colours, vh: number,
  selectedRow: number): void {
  ctx.fillStyle = c.bg;
  ctx.globalAlpha = 0.85;
  ctx.fillRect(0, 0, AXIS_W, vh);
  ctx.globalAlpha = 1;
  ctx.font = FONT;
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  for (let row = 0; row < L.rows; row++) {
    const y = rowY(row, L.rows) * t.k + t.y;
    if (y < -8 || y > vh + 8) continue;
    ctx.fillStyle = row === selectedRow ? c.accent : c.dim;
    ctx.fillText(row === 0 ? "emb" : row === L.rows - 1 ? "logit" : `L${row - 1}`, 4, y);
  }
}
