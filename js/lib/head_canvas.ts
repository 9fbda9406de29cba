// The layers x heads grid on ONE canvas (no DOM node per cell, so 1,024-token prompts and 32 x 32 heads stay
// responsive): each cell coloured by a statistic, the head's pattern thumbnail inside cells that are large
// enough, layer/head numbers around it. Hit-testing, hover and the keyboard cursor live here too.
import { colourFor, normalise, type SignMode } from "./colour";
import { clearCanvas, cssVar } from "./dom";
import { hideTooltip, showTooltip } from "./tooltip";
import type { Tensor } from "./tensor";
import { keyboardCanvas, redrawOnScroll } from "./layout";

export const LABEL_W = 34; // room for "L31"
export const HEADER_H = 16; // room for head numbers
const MIN_CELL = 8;
const MAX_CELL = 56;
export const THUMB_MIN = 28; // thumbnails are drawn in cells at least this large (CSS px)
const NOT_COMPUTED = "rgba(128,128,128,0.22)";

export interface GridSpec {
  nLayers: number;
  nHeads: number;
  values: Float32Array | null; // (L * H) the statistic, C order; NaN = not computed / undefined
  mode: SignMode;
  scale: number; // divisor for colour (see colour.normalise)
  thumbs: Tensor | null; // (L, H, S, S)
  selected: [number, number]; // [layer, head] of the open head; -1 none
  selectedLayer: number; // a layer selected without a head (a linked view) is outlined
  describe: (layer: number, head: number) => string;
}

export interface GridEvents {
  open: (layer: number, head: number) => void; // click, Enter
  move: (layer: number, head: number) => void; // arrow keys moved the cursor
  close: () => void; // Escape
}

/** Cells as large as the container allows, between MIN_CELL and MAX_CELL (then the box scrolls). */
export function cellSize(width: number, nHeads: number): number {
  const avail = width - LABEL_W - 6;
  return Math.max(MIN_CELL, Math.min(MAX_CELL, Math.floor(avail / Math.max(1, nHeads))));
}

const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

function parseRgb(css: string): [number, number, number] {
  const m = css.match(/(\d+)\D+(\d+)\D+(\d+)/);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [40, 40, 40];
}

/** All thumbnails in one offscreen canvas (H*S x L*S), each scaled to its own max (sqrt, so faint heads show). */
function buildAtlas(thumbs: Tensor, rgb: [number, number, number]): HTMLCanvasElement | null {
  const [nl, nh, s] = thumbs.shape;
  if (!nl || !nh || !s) return null;
  const atlas = document.createElement("canvas");
  atlas.width = nh * s;
  atlas.height = nl * s;
  const ctx = atlas.getContext("2d");
  if (!ctx) return null;
  const img = ctx.createImageData(nh * s, nl * s);
  for (let l = 0; l < nl; l++) {
    for (let hd = 0; hd < nh; hd++) {
      const base = (l * nh + hd) * s * s;
      let max = 0;
      for (let i = 0; i < s * s; i++) max = Math.max(max, thumbs.data[base + i] || 0);
      for (let q = 0; q < s; q++) {
        for (let k = 0; k < s; k++) {
          const v = thumbs.data[base + q * s + k];
          const o = 4 * ((l * s + q) * nh * s + hd * s + k);
          img.data[o] = rgb[0];
          img.data[o + 1] = rgb[1];
          img.data[o + 2] = rgb[2];
          img.data[o + 3] = max > 0 && v > 0 ? Math.round(235 * Math.sqrt(v / max)) : 0;
        }
      }
    }
  }
  ctx.putImageData(img, 0, 0);
  return atlas;
}

export class HeadCanvas {
  readonly canvas: HTMLCanvasElement;
  cell = MIN_CELL;
  cursor: [number, number] = [0, 0];
  private spec: GridSpec | null = null;
  private atlasFor: Tensor | null = null;
  private atlas: HTMLCanvasElement | null = null;
  private box: HTMLElement | null = null;

  constructor(tooltip: HTMLElement, private on: GridEvents) {
    const c = document.createElement("canvas");
    c.className = "aw-hg-canvas";
    c.tabIndex = 0;
    c.setAttribute("role", "grid");
    this.canvas = c;
    c.addEventListener("mousemove", (e) => {
      const cell = this.cellAt(e);
      if (cell && this.spec) showTooltip(tooltip, this.spec.describe(cell[0], cell[1]), e);
      else hideTooltip(tooltip);
    });
    c.addEventListener("mouseleave", () => hideTooltip(tooltip));
    c.addEventListener("click", (e) => {
      const cell = this.cellAt(e);
      if (!cell) return;
      this.cursor = cell;
      this.on.open(cell[0], cell[1]);
    });
    keyboardCanvas(c, (e) => this.key(e), () => this.redraw());
  }

  /** Keep the layer and head numbers in view while `box` (the canvas's scrolling parent) scrolls: they are
   * redrawn at its scroll offset over an opaque band, as CSS `position: sticky` would place them. */
  stickTo(box: HTMLElement): void {
    this.box = box;
    redrawOnScroll(box, () => this.redraw());
  }

  private key(e: KeyboardEvent): void {
    if (!this.spec) return;
    const step: Record<string, [number, number]> = {
      ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1],
    };
    if (e.key in step) {
      const [dl, dh] = step[e.key];
      this.cursor = [clamp(this.cursor[0] + dl, 0, this.spec.nLayers - 1), clamp(this.cursor[1] + dh, 0, this.spec.nHeads - 1)];
      this.on.move(this.cursor[0], this.cursor[1]);
      this.redraw();
    } else if (e.key === "Enter" || e.key === " ") {
      this.on.open(this.cursor[0], this.cursor[1]);
    } else if (e.key === "Escape") {
      this.on.close();
    } else {
      return;
    }
    e.preventDefault();
    e.stopPropagation();
  }

  cellAt(e: MouseEvent): [number, number] | null {
    if (!this.spec) return null;
    const box = this.canvas.getBoundingClientRect();
    const x = e.clientX - box.left;
    const y = e.clientY - box.top;
    if (x < (this.box?.scrollLeft ?? 0) + LABEL_W || y < (this.box?.scrollTop ?? 0) + HEADER_H) return null; // labels
    const hd = Math.floor((x - LABEL_W) / this.cell);
    const l = Math.floor((y - HEADER_H) / this.cell);
    if (hd < 0 || l < 0 || hd >= this.spec.nHeads || l >= this.spec.nLayers) return null;
    return [l, hd];
  }

  draw(spec: GridSpec, width: number): void {
    this.spec = spec;
    this.cell = cellSize(width, spec.nHeads);
    if (spec.selected[0] >= 0 && spec.selected[1] >= 0) this.cursor = [spec.selected[0], spec.selected[1]];
    this.cursor = [clamp(this.cursor[0], 0, Math.max(0, spec.nLayers - 1)), clamp(this.cursor[1], 0, Math.max(0, spec.nHeads - 1))];
    this.redraw();
  }

  redraw(): void {
    const spec = this.spec;
    if (!spec) return;
    const { nLayers: nl, nHeads: nh, values } = spec;
    const cell = this.cell;
    const c = this.canvas;
    c.dataset.cell = String(cell);
    c.dataset.left = String(LABEL_W);
    c.dataset.top = String(HEADER_H);
    c.dataset.cursor = `${this.cursor[0]},${this.cursor[1]}`;
    c.setAttribute("aria-label", `attention heads, ${nl} layers x ${nh} heads: arrows move, Enter opens, Escape closes. ` +
      spec.describe(this.cursor[0], this.cursor[1]).replace(/\n/g, "; "));
    const w = LABEL_W + nh * cell + 2;
    const hgt = HEADER_H + nl * cell + 2;
    const ctx = clearCanvas(c, w, hgt);
    if (!ctx) return;
    const fg = cssVar(c, "--aw-fg-dim", "#616161");
    const accent = cssVar(c, "--aw-accent", "#1976d2");

    const showThumbs = spec.thumbs !== null && cell >= THUMB_MIN;
    if (showThumbs && this.atlasFor !== spec.thumbs) {
      this.atlas = buildAtlas(spec.thumbs as Tensor, parseRgb(getComputedStyle(c).color));
      this.atlasFor = spec.thumbs;
    }
    const s = spec.thumbs?.shape[2] ?? 0;
    ctx.imageSmoothingEnabled = false;
    for (let l = 0; l < nl; l++) {
      for (let hd = 0; hd < nh; hd++) {
        const x = LABEL_W + hd * cell;
        const y = HEADER_H + l * cell;
        const v = values ? values[l * nh + hd] : NaN;
        ctx.fillStyle = Number.isNaN(v) ? NOT_COMPUTED : "rgba(128,128,128,0.06)";
        ctx.fillRect(x, y, cell - 1, cell - 1);
        if (!Number.isNaN(v)) {
          ctx.fillStyle = colourFor(normalise(v, spec.scale, spec.mode), spec.mode);
          ctx.fillRect(x, y, cell - 1, cell - 1);
        }
        if (showThumbs && this.atlas && s > 0) {
          ctx.drawImage(this.atlas, hd * s, l * s, s, s, x + 3, y + 3, cell - 7, cell - 7);
        }
      }
    }
    ctx.lineWidth = 2;
    ctx.strokeStyle = accent;
    if (spec.selectedLayer >= 0 && spec.selectedLayer < nl) {
      ctx.globalAlpha = 0.45;
      ctx.strokeRect(LABEL_W, HEADER_H + spec.selectedLayer * cell, nh * cell, cell);
      ctx.globalAlpha = 1;
    }
    const [sl, sh] = spec.selected;
    if (sl >= 0 && sh >= 0) ctx.strokeRect(LABEL_W + sh * cell + 1, HEADER_H + sl * cell + 1, cell - 3, cell - 3);
    if (document.activeElement === c) {
      ctx.setLineDash([3, 2]);
      ctx.strokeStyle = fg;
      ctx.strokeRect(LABEL_W + this.cursor[1] * cell + 0.5, HEADER_H + this.cursor[0] * cell + 0.5, cell - 2, cell - 2);
      ctx.setLineDash([]);
    }
    this.drawLabels(ctx, nl, nh, fg);
  }

  /** Layer numbers down the left, head numbers across the top, on opaque bands at the scroll offset. */
  private drawLabels(ctx: CanvasRenderingContext2D, nl: number, nh: number, fg: string): void {
    const cell = this.cell;
    const sx = this.box?.scrollLeft ?? 0;
    const sy = this.box?.scrollTop ?? 0;
    this.canvas.dataset.labelsAt = `${sx},${sy}`;
    ctx.fillStyle = cssVar(this.canvas, "--aw-bg", "#ffffff");
    ctx.fillRect(sx, 0, LABEL_W, HEADER_H + nl * cell + 2);
    ctx.fillRect(0, sy, LABEL_W + nh * cell + 2, HEADER_H);
    ctx.font = "10px ui-monospace, monospace";
    ctx.fillStyle = fg;
    ctx.textBaseline = "middle";
    const every = (n: number) => Math.max(1, Math.ceil(n / cell)); // label every k-th row/column when small
    ctx.textAlign = "center";
    for (let hd = 0; hd < nh; hd += every(18)) ctx.fillText(String(hd), LABEL_W + (hd + 0.5) * cell, sy + HEADER_H / 2);
    ctx.textAlign = "right";
    for (let l = 0; l < nl; l += every(12)) ctx.fillText(`L${l}`, sx + LABEL_W - 4, HEADER_H + (l + 0.5) * cell);
  }
}
