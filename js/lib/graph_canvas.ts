// The graph on ONE canvas (no DOM node per node or edge): pan and zoom (pan_zoom.ts), hit-testing, hover with the
// tooltip, clicks and a few keys; the marks are painted by graph_paint.ts. Redraws are coalesced into one per
// animation frame, and each records its time (data-draw-ms) so tests can say how long a redraw takes, and the
// share of the drawing width its nodes span (data-used-width), so tests can say the graph uses the view's width.
import { paintBrushBand } from "./brush";
import { clearCanvas, cssVar } from "./dom";
import type { GraphData } from "./graph_model";
import type { Layout } from "./graph_layout";
import { rowOf } from "./graph_layout";
import { AXIS_W, paintAxis, paintEdges, paintNodes, paintTokens, screenRadius, type Colours, type PaintState } from "./graph_paint";
import type { Paths } from "./graph_paths";
import { PanZoom } from "./pan_zoom";
import { hideTooltip, showTooltip } from "./tooltip";

const HIT_SLOP = 4; // px around a node that still hit it
const TOKEN_PX = 76; // screen px under the bottom row kept free for the token texts when fitting

export interface GraphEvents {
  pick(node: number, e: MouseEvent | KeyboardEvent): void; // a node (shown index), or -1 for empty space
  describe(node: number): string; // the tooltip text of a node
  hover?(node: number): void; // the node under the pointer changed (-1: none), for brushing (lib/brush.ts)
}

export interface Selection {
  paths: Paths | null;
  selected: number;
  pinned: Uint8Array;
  visible: Uint8Array | null;
  lit: Uint8Array | null;
}

/** The layout of the data for a drawing area of this width / height (graph_layout.ts layoutGraph). */
export type LayoutFor = (aspect: number) => Layout;

export class GraphCanvas {
  readonly canvas: HTMLCanvasElement;
  readonly pz: PanZoom;
  hover = -1;
  brushed = -1; // the position another part hovers (lib/brush.ts): its column is banded; -1 none
  private g: GraphData | null = null;
  private L: Layout | null = null;
  private layoutFor: LayoutFor | null = null;
  private aspect = 0;
  private tokens: string[] = [];
  private sel: Selection = { paths: null, selected: -1, pinned: new Uint8Array(0), visible: null, lit: null };
  private vw = 600;
  private vh = 400;
  private queued = false;

  constructor(private tooltip: HTMLElement, private on: GraphEvents) {
    const c = document.createElement("canvas");
    c.className = "aw-graph-canvas";
    c.tabIndex = 0;
    this.canvas = c;
    this.pz = new PanZoom(c, () => this.requestRedraw());
    c.addEventListener("mousemove", (e) => this.hoverAt(e));
    c.addEventListener("mouseleave", () => {
      hideTooltip(tooltip);
      this.setHover(-1);
    });
    c.addEventListener("click", (e) => {
      if (this.pz.consumeDrag()) return;
      const box = c.getBoundingClientRect();
      this.on.pick(this.nodeAt(e.clientX - box.left, e.clientY - box.top), e);
    });
    c.addEventListener("keydown", (e) => this.key(e));
  }

  private hoverAt(e: MouseEvent): void {
    if (this.pz.dragging) return;
    const box = this.canvas.getBoundingClientRect();
    const i = this.nodeAt(e.clientX - box.left, e.clientY - box.top);
    if (i >= 0) showTooltip(this.tooltip, this.on.describe(i), e);
    else hideTooltip(this.tooltip);
    this.canvas.style.cursor = i >= 0 ? "pointer" : "grab";
    this.setHover(i);
  }

  private setHover(i: number): void {
    if (i === this.hover) return;
    this.hover = i;
    this.canvas.dataset.hover = i >= 0 && this.g ? this.g.ids[i] : "";
    this.on.hover?.(i);
    this.requestRedraw();
  }

  private key(e: KeyboardEvent): void {
    const mid = [this.vw / 2, this.vh / 2] as const;
    if (e.key === "+" || e.key === "=") this.pz.zoomAt(mid[0], mid[1], 1.25);
    else if (e.key === "-" || e.key === "_") this.pz.zoomAt(mid[0], mid[1], 0.8);
    else if (e.key === "0") this.fit();
    else if (e.key === "Escape") this.on.pick(-1, e);
    else return;
    e.preventDefault();
    e.stopPropagation();
  }

  /** The width / height that the fitted graph fills: the canvas less the axis strip and the token texts. */
  private fitBox(): [number, number] {
    return [Math.max(1, this.vw - AXIS_W), Math.max(60, this.vh - TOKEN_PX)];
  }

  /** New data: keep the user's pan and zoom unless `refit` (a new graph) or they never moved it. */
  setData(g: GraphData, layoutFor: LayoutFor, tokens: string[], refit: boolean): void {
    const [w, h] = this.fitBox();
    this.g = g;
    this.layoutFor = layoutFor;
    this.aspect = w / h;
    this.L = layoutFor(this.aspect);
    this.tokens = tokens;
    if (this.hover >= g.n) this.hover = -1;
    if (refit || !this.pz.touched) this.fit(false);
    this.requestRedraw();
  }

  setSelection(sel: Selection): void {
    this.sel = sel;
    this.requestRedraw();
  }

  /** The canvas's CSS size: lays the graph out again for the new shape, and refits when the user has not moved
   * the view. */
  resize(vw: number, vh: number): void {
    if (vw === this.vw && vh === this.vh) return;
    [this.vw, this.vh] = [vw, vh];
    const [w, h] = this.fitBox();
    if (this.layoutFor && Math.abs(w / h - this.aspect) > 1e-3) {
      this.aspect = w / h;
      this.L = this.layoutFor(this.aspect);
    }
    if (!this.pz.touched) this.fit(false);
    this.requestRedraw();
  }

  fit(redraw = true): void {
    if (!this.L) return;
    const [w, h] = this.fitBox();
    this.pz.fit(this.L.width, this.L.height, w, h);
    this.pz.t = { ...this.pz.t, x: this.pz.t.x + AXIS_W };
    if (redraw) this.requestRedraw();
  }

  /** The shown node under canvas point (sx, sy), the nearest within its radius + HIT_SLOP; -1 none. */
  nodeAt(sx: number, sy: number): number {
    const { g, L } = this;
    if (!g || !L || sx < AXIS_W) return -1;
    const t = this.pz.t;
    let best = -1;
    let bestD = Infinity;
    for (let i = 0; i < g.n; i++) {
      if (this.sel.visible && !this.sel.visible[i]) continue;
      const d = Math.hypot(L.x[i] * t.k + t.x - sx, L.y[i] * t.k + t.y - sy);
      if (d <= screenRadius(L.r[i], t.k) + HIT_SLOP && d < bestD) [best, bestD] = [i, d];
    }
    return best;
  }

  /** Canvas coordinates of node `id` (tests and the keyboard use them); null when not shown. */
  screenOf(id: string): [number, number] | null {
    const i = this.g?.index.get(id);
    if (i === undefined || !this.L) return null;
    return this.pz.toScreen(this.L.x[i], this.L.y[i]);
  }

  requestRedraw(): void {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => {
      this.queued = false;
      this.redraw();
    });
  }

  redraw(): void {
    const { g, L } = this;
    if (!g || !L) return;
    const started = performance.now();
    const c = this.canvas;
    const ctx = clearCanvas(c, this.vw, this.vh);
    if (!ctx) return;
    const colours: Colours = {
      fg: cssVar(c, "--aw-fg", "#1f1f1f"), dim: cssVar(c, "--aw-fg-dim", "#616161"),
      accent: cssVar(c, "--aw-accent", "#1976d2"), bg: cssVar(c, "--aw-bg", "#ffffff"),
    };
    const t = this.pz.t;
    const state: PaintState = { ...this.sel, hover: this.hover, colours };
    const band = L.columns[this.brushed];
    if (band) paintBrushBand(ctx, band.x0 * t.k + t.x, band.x1 * t.k + t.x, 0, this.vh);
    const drawn = paintEdges(ctx, g, L, t, state, this.vw, this.vh);
    paintNodes(ctx, g, L, t, state, this.vw, this.vh);
    const sel = this.sel.selected;
    paintTokens(ctx, this.tokens, L, t, colours, this.vw, sel >= 0 ? g.position[sel] : -1);
    paintAxis(ctx, L, t, colours, this.vh, sel >= 0 ? rowOf(g.layer[sel], L.rows - 2) : -1);
    Object.assign(c.dataset, {
      drawMs: (performance.now() - started).toFixed(2), drawnEdges: String(drawn), zoom: t.k.toFixed(4),
      panX: t.x.toFixed(1), panY: t.y.toFixed(1), usedWidth: this.usedWidth().toFixed(3),
    });
  }

  /** The share of the drawing width (right of the axis strip) between the leftmost and the rightmost node. */
  usedWidth(): number {
    const { g, L } = this;
    if (!g || !L || g.n === 0) return 0;
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < g.n; i++) {
      lo = Math.min(lo, L.x[i]);
      hi = Math.max(hi, L.x[i]);
    }
    const t = this.pz.t;
    const left = Math.max(AXIS_W, lo * t.k + t.x);
    const right = Math.min(this.vw, hi * t.k + t.x);
    return Math.max(0, right - left) / Math.max(1, this.vw - AXIS_W);
  }
}
