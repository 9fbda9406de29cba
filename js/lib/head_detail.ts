// The open head's detail on one canvas: its full (T, T) pattern (rows queries, columns keys) with token labels,
// and under it, aligned with the key columns, the head's direct contribution through each source token.
// Token labels are drawn with fillText: canvas text is never parsed as markup.
import { paintBrushBand } from "./brush";
import { colourFor, formatValue, normalise } from "./colour";
import { cssVar, sizeCanvas } from "./dom";
import { hideTooltip, showTooltip } from "./tooltip";
import type { Tensor } from "./tensor";

const ROW_LABEL_W = 92;
const COL_LABEL_H = 64;
const LABEL_MIN_CELL = 9; // token labels only when a cell can hold 10px text
const MAX_CELL = 18;
const BAR_H = 40;
const GAP = 8;
const HEAT = [230, 85, 13]; // attention weight: the "absolute" orange of colour.ts

export interface DetailSpec {
  labels: string[]; // (T,) visible token text (whitespace shown), UNTRUSTED: drawn as canvas text only
  attention: Tensor | null; // (T, T)
  contribution: Float32Array | null; // (T,) direct contribution per source; null = not available
  query: number; // the selected target's query row (outlined), -1 none
  source: number; // the selected source column (outlined), -1 none
}

const cut = (s: string, n: number) => (s.length > n ? s.slice(0, n - 1) + "\u2026" : s);

export class DetailCanvas {
  readonly canvas: HTMLCanvasElement;
  private spec: DetailSpec | null = null;
  private imageFor: Tensor | null = null; // the pattern image is rebuilt only when the pattern changes
  private image: HTMLCanvasElement | null = null;
  private geo = { left: 0, top: 0, cell: 1, t: 0, barTop: 0 };
  private width = 0;
  brushed = -1; // the position another part hovers (lib/brush.ts): its key column is banded; -1 none

  /** hover: the key (source) column under the pointer, -1 none, for brushing. */
  constructor(tooltip: HTMLElement, hover?: (position: number) => void) {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "aw-detail-canvas";
    this.canvas.addEventListener("mousemove", (e) => {
      const text = this.describe(e);
      if (text) showTooltip(tooltip, text, e);
      else hideTooltip(tooltip);
      hover?.(text ? this.keyAt(e) : -1);
    });
    this.canvas.addEventListener("mouseleave", () => {
      hideTooltip(tooltip);
      hover?.(-1);
    });
  }

  private keyAt(e: MouseEvent): number {
    const { left, cell, t } = this.geo;
    const k = Math.floor((e.clientX - this.canvas.getBoundingClientRect().left - left) / cell);
    return k >= 0 && k < t ? k : -1;
  }

  /** Paint again as last drawn (the brushed column moved). */
  repaint(): void {
    if (this.spec) this.draw(this.spec, this.width);
  }

  private describe(e: MouseEvent): string {
    const spec = this.spec;
    if (!spec) return "";
    const { left, top, cell, t, barTop } = this.geo;
    const box = this.canvas.getBoundingClientRect();
    const x = e.clientX - box.left - left;
    const y = e.clientY - box.top;
    const k = Math.floor(x / cell);
    if (k < 0 || k >= t) return "";
    const lab = (p: number) => JSON.stringify(spec.labels[p] ?? "?");
    const q = Math.floor((y - top) / cell);
    if (spec.attention && q >= 0 && q < t) {
      return `query #${q} ${lab(q)}\nkey #${k} ${lab(k)}\nweight ${formatValue(spec.attention.data[q * t + k])}`;
    }
    if (spec.contribution && y >= barTop && y < barTop + BAR_H) {
      return `source #${k} ${lab(k)}\ndirect contribution ${formatValue(spec.contribution[k])}`;
    }
    return "";
  }

  draw(spec: DetailSpec, width: number): void {
    this.spec = spec;
    this.width = width;
    const t = spec.attention?.shape[0] ?? spec.contribution?.length ?? 0;
    const fits = Math.floor((width - ROW_LABEL_W - 8) / Math.max(1, t));
    const labels = fits >= LABEL_MIN_CELL;
    const left = labels ? ROW_LABEL_W : 4;
    const cell = Math.max(1, Math.min(MAX_CELL, Math.floor((width - left - 8) / Math.max(1, t))));
    const top = labels ? COL_LABEL_H : 4;
    const matH = spec.attention ? t * cell : 0;
    const barTop = top + matH + GAP;
    const height = barTop + (spec.contribution ? BAR_H + 4 : 0);
    this.geo = { left, top, cell, t, barTop };
    const c = this.canvas;
    c.dataset.cell = String(cell);
    c.dataset.left = String(left);
    c.dataset.top = String(top);
    const ctx = sizeCanvas(c, left + t * cell + 4, height);
    if (!ctx) return;
    const fg = cssVar(c, "--aw-fg-dim", "#616161");
    const accent = cssVar(c, "--aw-accent", "#1976d2");
    ctx.font = "10px ui-monospace, monospace";
    ctx.fillStyle = fg;
    if (labels) {
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      for (let p = 0; p < t; p++) {
        const text = `${p} ${cut(spec.labels[p] ?? "", 9)}`;
        if (spec.attention) ctx.fillText(text, left - 4, top + (p + 0.5) * cell);
        ctx.save();
        ctx.translate(left + (p + 0.5) * cell, top - 4);
        ctx.rotate(-Math.PI / 2);
        ctx.textAlign = "left";
        ctx.fillText(text, 0, 0);
        ctx.restore();
      }
    }
    if (spec.attention) this.drawMatrix(ctx, spec.attention, t, left, top, cell);
    if (this.brushed >= 0 && this.brushed < t) {
      paintBrushBand(ctx, left + this.brushed * cell, left + (this.brushed + 1) * cell, top, height);
    }
    ctx.lineWidth = 2;
    ctx.strokeStyle = accent;
    if (spec.attention && spec.query >= 0 && spec.query < t) ctx.strokeRect(left, top + spec.query * cell, t * cell, cell);
    if (spec.source >= 0 && spec.source < t) {
      ctx.setLineDash([3, 2]);
      ctx.strokeRect(left + spec.source * cell, top, cell, matH + (spec.contribution ? GAP + BAR_H : 0));
      ctx.setLineDash([]);
    }
    if (spec.contribution) this.drawBars(ctx, spec.contribution, t, left, barTop, cell, fg);
  }

  private drawMatrix(ctx: CanvasRenderingContext2D, a: Tensor, t: number, left: number, top: number, cell: number): void {
    // One pixel per (query, key) in an offscreen image, scaled up without smoothing: fast at T = 1,024.
    if (this.imageFor !== a || !this.image) {
      this.image = this.patternImage(a, t);
      this.imageFor = a;
    }
    ctx.fillStyle = "rgba(128,128,128,0.06)";
    ctx.fillRect(left, top, t * cell, t * cell);
    ctx.imageSmoothingEnabled = false;
    if (this.image) ctx.drawImage(this.image, left, top, t * cell, t * cell);
  }

  private patternImage(a: Tensor, t: number): HTMLCanvasElement | null {
    const img = document.createElement("canvas");
    img.width = Math.max(1, t);
    img.height = Math.max(1, t);
    const ictx = img.getContext("2d");
    if (!ictx) return null;
    let max = 0;
    for (let i = 0; i < a.data.length; i++) if (a.data[i] > max) max = a.data[i];
    const px = ictx.createImageData(img.width, img.height);
    for (let i = 0; i < t * t; i++) {
      const v = a.data[i];
      px.data[4 * i] = HEAT[0];
      px.data[4 * i + 1] = HEAT[1];
      px.data[4 * i + 2] = HEAT[2];
      px.data[4 * i + 3] = max > 0 && v > 0 ? Math.round(255 * Math.sqrt(v / max)) : 0;
    }
    ictx.putImageData(px, 0, 0);
    return img;
  }

  private drawBars(ctx: CanvasRenderingContext2D, v: Float32Array, t: number, left: number, top: number, cell: number,
    fg: string): void {
    let scale = 0;
    for (let k = 0; k < t; k++) if (Number.isFinite(v[k])) scale = Math.max(scale, Math.abs(v[k]));
    const mid = top + BAR_H / 2;
    ctx.fillStyle = fg;
    ctx.fillRect(left, mid, t * cell, 1);
    for (let k = 0; k < t; k++) {
      const n = normalise(v[k], scale, "signed");
      if (!Number.isFinite(n) || n === 0) continue;
      const hgt = (n * BAR_H) / 2;
      ctx.fillStyle = colourFor(n > 0 ? 1 : -1, "signed");
      ctx.fillRect(left + k * cell, hgt > 0 ? mid - hgt : mid, Math.max(1, cell - 1), Math.abs(hgt));
    }
  }
}
