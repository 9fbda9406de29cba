// The selected row's attribution as bars over the positions, and under it the steps x positions (or rows x
// positions) heatmap, on ONE canvas with a shared x axis (column p = position p). Cells of positions that were
// still masks at that row's step carry a dot; the positions a step unmasks are outlined. Row labels stay in
// view while the box scrolls sideways. Hit-testing and hover live here too.
import { paintBrushBand } from "./brush";
import { colourFor, normalise, type SignMode } from "./colour";
import { clearCanvas, cssVar } from "./dom";
import { redrawOnScroll } from "./layout";
import { hideTooltip, showTooltip } from "./tooltip";

export const LABEL_W = 40;
const BAR_H = 52;
const GAP = 10;
const TOP = 2;
const NOT_COMPUTED = "rgba(128,128,128,0.22)";

export interface TimelineSpec {
  t: number;
  nPrompt: number;
  bars: Float32Array | null; // (T,) the selected row's scores; null: no row selected
  mode: SignMode; // "absolute" for L2 norms, "signed" for signed sums
  barMasked: (p: number) => boolean; // masked at the selected row's step
  target: number; // the selected row's position, -1 none
  source: number;
  cells: Float32Array | null; // (nRows, T) heatmap; NaN = nothing unmasked / not computed
  nRows: number;
  scales: Float64Array; // (nRows,) divisor of each heatmap row
  rowLabel: (k: number) => string;
  cellMasked: (k: number, p: number) => boolean;
  cellNew: (k: number, p: number) => boolean; // unmasked by that row's step
  selectedRow: number; // heatmap row outlined, -1 none
  describeBar: (p: number) => string;
  describeCell: (k: number, p: number) => string;
}

export interface TimelineEvents {
  source: (p: number) => void; // a bar
  cell: (k: number, p: number) => void; // a heatmap cell (p = -1: its label)
  hover?: (p: number) => void; // the position under the pointer, -1 none (brushing, lib/brush.ts)
}

type Hit = { area: "bar"; p: number } | { area: "cell"; k: number; p: number };

export class TimelineCanvas {
  readonly canvas: HTMLCanvasElement;
  dx = 4;
  ch = 10;
  brushed = -1; // the position another part hovers (lib/brush.ts): its column is banded; -1 none
  private spec: TimelineSpec | null = null;
  private box: HTMLElement | null = null;

  constructor(tooltip: HTMLElement, private on: TimelineEvents) {
    const c = document.createElement("canvas");
    c.className = "aw-tl-canvas";
    c.setAttribute("role", "img"); // the scrubber and the token text are the keyboard's way in
    c.setAttribute("aria-label", "the selected token's attribution over every position, and the heatmap below it");
    this.canvas = c;
    c.addEventListener("mousemove", (e) => {
      const hit = this.hitAt(e);
      const s = this.spec;
      if (!hit || !s) hideTooltip(tooltip);
      else showTooltip(tooltip, hit.area === "bar" ? s.describeBar(hit.p) : hit.p >= 0
        ? s.describeCell(hit.k, hit.p) : `${s.rowLabel(hit.k)}: click to show it`, e);
      this.on.hover?.(hit ? hit.p : -1);
    });
    c.addEventListener("mouseleave", () => {
      hideTooltip(tooltip);
      this.on.hover?.(-1);
    });
    c.addEventListener("click", (e) => {
      const hit = this.hitAt(e);
      if (hit?.area === "bar") this.on.source(hit.p);
      else if (hit) this.on.cell(hit.k, hit.p);
    });
  }

  stickTo(box: HTMLElement): void {
    this.box = box;
    redrawOnScroll(box, () => this.redraw());
  }

  get hmTop(): number {
    return TOP + BAR_H + GAP;
  }

  hitAt(e: MouseEvent): Hit | null {
    const s = this.spec;
    if (!s) return null;
    const rect = this.canvas.getBoundingClientRect();
    const x = e.clientX - rect.left;
    const y = e.clientY - rect.top;
    const label = x < (this.box?.scrollLeft ?? 0) + LABEL_W;
    const p = Math.floor((x - LABEL_W) / this.dx);
    if (!label && (p < 0 || p >= s.t)) return null;
    if (y >= TOP && y < TOP + BAR_H) return label || !s.bars ? null : { area: "bar", p };
    const k = Math.floor((y - this.hmTop) / this.ch);
    if (y < this.hmTop || k >= s.nRows) return null;
    return { area: "cell", k, p: label ? -1 : p };
  }

  draw(spec: TimelineSpec, width: number): void {
    this.spec = spec;
    this.dx = Math.max(3, Math.min(36, Math.floor((width - LABEL_W - 4) / Math.max(1, spec.t))));
    this.ch = Math.max(5, Math.min(14, Math.floor(240 / Math.max(1, spec.nRows))));
    this.redraw();
  }

  redraw(): void {
    const s = this.spec;
    if (!s) return;
    const { dx, ch, canvas: c } = this;
    const top = this.hmTop;
    Object.assign(c.dataset, { x0: String(LABEL_W), dx: String(dx), barTop: String(TOP), barH: String(BAR_H),
      hmTop: String(top), cellH: String(ch), hmRows: String(s.nRows) });
    const w = LABEL_W + s.t * dx + 2;
    const hgt = top + s.nRows * ch + 2;
    const ctx = clearCanvas(c, w, hgt);
    if (!ctx) return;
    const fg = cssVar(c, "--aw-fg-dim", "#616161");
    const accent = cssVar(c, "--aw-accent", "#1976d2");
    const xOf = (p: number) => LABEL_W + p * dx;

    // Bars: the selected row over every position; a grey tick under the positions that were masks.
    let scale = 0;
    for (const v of s.bars ?? []) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
    const zero = s.mode === "signed" ? TOP + (BAR_H - 6) / 2 : TOP + BAR_H - 6;
    const span = s.mode === "signed" ? (BAR_H - 6) / 2 : BAR_H - 6;
    ctx.fillStyle = "rgba(128,128,128,0.06)";
    ctx.fillRect(LABEL_W, TOP, s.t * dx, BAR_H);
    for (let p = 0; p < s.t; p++) {
      const v = s.bars ? s.bars[p] : NaN;
      if (s.bars && s.barMasked(p)) {
        ctx.fillStyle = NOT_COMPUTED;
        ctx.fillRect(xOf(p), TOP + BAR_H - 4, Math.max(1, dx - 1), 3);
      }
      if (!Number.isFinite(v) || !(scale > 0)) continue;
      const len = (Math.abs(v) / scale) * span;
      ctx.fillStyle = colourFor(v < 0 && s.mode === "signed" ? -1 : 1, s.mode);
      ctx.fillRect(xOf(p), v < 0 && s.mode === "signed" ? zero : zero - len, Math.max(1, dx - 1), Math.max(1, len));
    }
    ctx.strokeStyle = fg;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(LABEL_W, zero + 0.5);
    ctx.lineTo(LABEL_W + s.t * dx, zero + 0.5);
    ctx.stroke();
    if (s.target >= 0) {
      ctx.fillStyle = accent;
      ctx.fillRect(xOf(s.target), TOP + BAR_H - 2, Math.max(2, dx - 1), 3);
    }

    // Heatmap.
    for (let k = 0; k < s.nRows; k++) {
      const y = top + k * ch;
      for (let p = 0; p < s.t; p++) {
        const v = s.cells ? s.cells[k * s.t + p] : NaN;
        ctx.fillStyle = Number.isNaN(v) ? NOT_COMPUTED : colourFor(normalise(v, s.scales[k], s.mode), s.mode);
        ctx.fillRect(xOf(p), y, dx - (dx > 4 ? 1 : 0), ch - 1);
        if (s.cellMasked(k, p) && dx >= 4 && ch >= 5) {
          ctx.fillStyle = fg;
          ctx.fillRect(xOf(p) + dx / 2 - 1, y + ch / 2 - 1, 1.5, 1.5);
        }
        if (s.cellNew(k, p)) {
          ctx.strokeStyle = fg;
          ctx.strokeRect(xOf(p) + 0.5, y + 0.5, Math.max(1, dx - 2), ch - 2);
        }
      }
    }
    if (s.selectedRow >= 0 && s.selectedRow < s.nRows) {
      ctx.strokeStyle = accent;
      ctx.lineWidth = 2;
      ctx.strokeRect(LABEL_W + 1, top + s.selectedRow * ch, s.t * dx - 2, ch - 1);
    }
    const b = this.brushed;
    if (b >= 0 && b < s.t) paintBrushBand(ctx, xOf(b), xOf(b + 1), TOP, hgt);
    // The prompt | generated boundary, and the selected source column through both parts.
    ctx.lineWidth = 1;
    ctx.strokeStyle = fg;
    ctx.setLineDash([2, 2]);
    const line = (x: number) => {
      ctx.beginPath();
      ctx.moveTo(x, TOP);
      ctx.lineTo(x, hgt);
      ctx.stroke();
    };
    if (s.nPrompt > 0 && s.nPrompt < s.t) line(xOf(s.nPrompt) - 0.5);
    if (s.source >= 0 && s.source < s.t) {
      ctx.strokeStyle = accent;
      line(xOf(s.source) - 0.5);
      line(xOf(s.source + 1) - 0.5);
    }
    ctx.setLineDash([]);

    // Labels, pinned to the left edge of the scrolled box over an opaque band.
    const left = this.box?.scrollLeft ?? 0;
    ctx.fillStyle = cssVar(c, "--aw-bg", "#ffffff");
    ctx.fillRect(left, 0, LABEL_W - 2, hgt);
    ctx.fillStyle = fg;
    ctx.font = "10px sans-serif";
    ctx.textBaseline = "middle";
    ctx.fillText(s.mode === "signed" ? "signed" : "L2", left + 2, TOP + 8);
    const every = Math.max(1, Math.ceil(10 / ch)); // a label every few rows when rows are thin
    for (let k = 0; k < s.nRows; k += every) {
      ctx.fillStyle = k === s.selectedRow ? accent : fg;
      ctx.fillText(s.rowLabel(k), left + 2, top + k * ch + ch / 2);
    }
    if (s.selectedRow >= 0 && s.selectedRow % every !== 0) {
      ctx.fillStyle = accent;
      ctx.fillText(s.rowLabel(s.selectedRow), left + 2, top + s.selectedRow * ch + ch / 2);
    }
  }
}
