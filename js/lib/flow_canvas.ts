// The layer flow on ONE canvas (no DOM node per circle: 1,000 tokens x 32 layers stay responsive): a row of
// token circles per shown layer, bottom-up, the output row on top; paths from each source above the threshold
// to the target in the row above; layer labels with the completeness error (kept in view while the box
// scrolls sideways) and per-head bars on the right. Hit-testing, hover and the keyboard cursor live here too;
// the paths and circles are painted by flow_paint.ts.
import { paintBrushBand } from "./brush";
import { colourFor } from "./colour";
import { clearCanvas, cssVar } from "./dom";
import { hideTooltip, showTooltip } from "./tooltip";
import { paintCircles, paintPaths } from "./flow_paint";
import { keyboardCanvas, redrawOnScroll } from "./layout";

export const LABEL_W = 54; // "L31" over "12.3% !"
const TOP = 6;
const LABEL_CHARS = 9; // token labels are cut to this many characters
const MIN_DX = 14;
const MAX_DX = 96;

export interface FlowSpec {
  labels: string[]; // (T,) token labels (drawn as canvas text, never markup)
  layers: number[]; // shown layers, bottom-up
  shares: Float32Array | null; // (n * T) signed shares; NaN = not computed
  heads: Float32Array | null; // (n * H) per-head values, or null (no bars)
  nHeads: number;
  completeness: Float32Array | null; // (n,)
  flag: number;
  target: number; // position of the selected target; -1 none
  source: number; // -1 none
  selectedRow: number; // index into layers of selected_layer; -1 none
  selectedHead: number;
  threshold: number;
  describe: (row: number, pos: number) => string; // row n = the output row
  describeHead: (row: number, head: number) => string;
}

export type Hit = { kind: "token"; row: number; pos: number } | { kind: "head"; row: number; head: number }
  | { kind: "layer"; row: number };

export interface FlowEvents {
  pick: (row: number, pos: number, shift: boolean) => void; // a token circle (row n: output, -1: label strip)
  head: (head: number) => void;
  layer: (row: number) => void;
  hover?: (pos: number) => void; // the token column under the pointer, -1 none (brushing, lib/brush.ts)
}

const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

export class FlowCanvas {
  readonly canvas: HTMLCanvasElement;
  cursor: [number, number] = [0, 0]; // [row, position]
  brushed = -1; // the position another part hovers (lib/brush.ts): its column is banded; -1 none
  private spec: FlowSpec | null = null;
  private box: HTMLElement | null = null;
  private dx = MIN_DX;
  private rowH = 44;
  private barW = 0;
  private tokensH = 0; // rotated token labels under the bottom row

  constructor(tooltip: HTMLElement, private on: FlowEvents) {
    const c = document.createElement("canvas");
    c.className = "aw-flow-canvas";
    c.tabIndex = 0;
    this.canvas = c;
    c.addEventListener("mousemove", (e) => {
      const hit = this.hitAt(e);
      if (hit && this.spec) {
        const s = this.spec;
        showTooltip(tooltip, hit.kind === "head" ? s.describeHead(hit.row, hit.head)
          : hit.kind === "token" ? s.describe(hit.row, hit.pos) : `layer ${s.layers[hit.row]}: click to select it`, e);
      } else hideTooltip(tooltip);
      this.on.hover?.(hit?.kind === "token" ? hit.pos : -1);
    });
    c.addEventListener("mouseleave", () => {
      hideTooltip(tooltip);
      this.on.hover?.(-1);
    });
    c.addEventListener("click", (e) => {
      const hit = this.hitAt(e);
      if (!hit) return;
      if (hit.kind === "head") this.on.head(hit.head);
      else if (hit.kind === "layer") this.on.layer(hit.row);
      else {
        if (hit.row >= 0) this.cursor = [hit.row, hit.pos];
        this.on.pick(hit.row, hit.pos, e.shiftKey);
      }
    });
    keyboardCanvas(c, (e) => this.key(e), () => this.redraw());
  }

  /** Keep the layer labels and the head bars in view while `box` scrolls sideways (redrawn at its offset). */
  stickTo(box: HTMLElement): void {
    this.box = box;
    redrawOnScroll(box, () => this.redraw());
  }

  private get n(): number { return this.spec?.layers.length ?? 0; }
  private get t(): number { return this.spec?.labels.length ?? 0; }
  private x(pos: number): number { return LABEL_W + this.dx * (pos + 0.5); }
  private y(row: number): number { return TOP + (this.n - row) * this.rowH + this.rowH / 2; }
  private get left(): number { return this.box?.scrollLeft ?? 0; }
  /** Left edge of the head bars: after the tokens, or at the visible right edge when the box is narrower. */
  private barX(): number {
    const natural = LABEL_W + this.t * this.dx + 6;
    const visible = this.box ? this.left + this.box.clientWidth - this.barW : natural;
    return Math.min(natural, Math.max(LABEL_W, visible));
  }

  private key(e: KeyboardEvent): void {
    if (!this.spec) return;
    const step: Record<string, [number, number]> = { ArrowUp: [1, 0], ArrowDown: [-1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (e.key in step) {
      const [dr, dp] = step[e.key];
      this.cursor = [clamp(this.cursor[0] + dr, 0, this.n), clamp(this.cursor[1] + dp, 0, this.t - 1)];
      this.redraw();
    } else if (e.key === "Enter" || e.key === " ") {
      this.on.pick(this.cursor[0], this.cursor[1], e.shiftKey);
    } else {
      return;
    }
    e.preventDefault();
    e.stopPropagation();
  }

  hitAt(e: MouseEvent): Hit | null {
    if (!this.spec) return null;
    const box = this.canvas.getBoundingClientRect();
    const x = e.clientX - box.left;
    const y = e.clientY - box.top;
    const row = this.n - Math.round((y - TOP - this.rowH / 2) / this.rowH);
    const pos = Math.floor((x - LABEL_W) / this.dx);
    const inRows = row >= 0 && row <= this.n && y >= TOP;
    if (x < this.left + LABEL_W) return inRows && row < this.n ? { kind: "layer", row } : null;
    if (this.spec.heads && this.barW && x >= this.barX() && inRows && row < this.n) {
      const head = Math.floor((x - this.barX() - 4) / ((this.barW - 10) / this.spec.nHeads));
      return head >= 0 && head < this.spec.nHeads ? { kind: "head", row, head } : null;
    }
    if (pos < 0 || pos >= this.t) return null;
    if (inRows) return { kind: "token", row, pos };
    return y > this.y(0) && y < this.y(0) + this.rowH / 2 + this.tokensH ? { kind: "token", row: -1, pos } : null;
  }

  draw(spec: FlowSpec, width: number): void {
    this.spec = spec;
    const t = spec.labels.length;
    this.barW = spec.heads ? clamp(spec.nHeads * 7, 40, 140) + 10 : 0;
    this.dx = clamp(Math.floor((width - LABEL_W - this.barW - 10) / Math.max(1, t)), MIN_DX, MAX_DX);
    this.rowH = spec.layers.length > 16 ? 30 : spec.layers.length > 8 ? 36 : 44;
    this.tokensH = 10 + 7 * Math.min(LABEL_CHARS, Math.max(1, ...spec.labels.map((l) => l.length)));
    if (spec.target >= 0 && this.cursor[1] !== spec.target && document.activeElement !== this.canvas) {
      this.cursor = [spec.selectedRow >= 0 ? spec.selectedRow : 0, spec.target];
    }
    this.cursor = [clamp(this.cursor[0], 0, spec.layers.length), clamp(this.cursor[1], 0, Math.max(0, t - 1))];
    this.redraw();
  }

  redraw(): void {
    const s = this.spec;
    if (!s) return;
    const c = this.canvas;
    const n = this.n;
    const t = this.t;
    const w = LABEL_W + t * this.dx + this.barW + 8;
    const hgt = TOP + (n + 1) * this.rowH + this.tokensH;
    Object.assign(c.dataset, {
      x0: String(this.x(0)), dx: String(this.dx), rows: JSON.stringify(Array.from({ length: n + 1 }, (_, r) => this.y(r))),
      barX0: String(this.barX() + 4), barW: String(s.nHeads ? (this.barW - 10) / s.nHeads : 0),
      cursor: `${this.cursor[0]},${this.cursor[1]}`,
    });
    c.setAttribute("aria-label", `layer flow, ${n} layers x ${t} tokens: arrows move, Enter picks the token. ` +
      s.describe(this.cursor[0], this.cursor[1]).replace(/\n/g, "; "));
    const ctx = clearCanvas(c, w, hgt);
    if (!ctx) return;
    const fg = cssVar(c, "--aw-fg", "#1f1f1f");
    const dim = cssVar(c, "--aw-fg-dim", "#616161");
    const accent = cssVar(c, "--aw-accent", "#1976d2");
    const bg = cssVar(c, "--aw-bg", "#ffffff");
    const bad = cssVar(c, "--aw-err-fg", "#a4000f");
    const rMax = Math.max(3, Math.min(this.dx, this.rowH) / 2 - 2);

    if (s.selectedRow >= 0) { // the selected layer's row
      ctx.fillStyle = accent;
      ctx.globalAlpha = 0.08;
      ctx.fillRect(LABEL_W, this.y(s.selectedRow) - this.rowH / 2, t * this.dx, this.rowH);
      ctx.globalAlpha = 1;
    }
    if (this.brushed >= 0 && this.brushed < t) {
      const x = this.x(this.brushed);
      paintBrushBand(ctx, x - this.dx / 2, x + this.dx / 2, this.y(n) - this.rowH / 2, this.y(0) + this.rowH / 2);
    }
    if (s.target >= 0) {
      ctx.strokeStyle = accent;
      ctx.globalAlpha = 0.25;
      ctx.beginPath();
      ctx.moveTo(this.x(s.target), this.y(0));
      ctx.lineTo(this.x(s.target), this.y(n));
      ctx.stroke();
      ctx.globalAlpha = 1;
    }
    // Paths first, circles over them.
    const geometry = { x: (pos: number) => this.x(pos), y: (row: number) => this.y(row), n, t };
    paintPaths(ctx, s, geometry);
    paintCircles(ctx, s, geometry, rMax, { dim, accent });
    if (document.activeElement === c) {
      ctx.strokeStyle = fg;
      ctx.setLineDash([3, 2]);
      ctx.lineWidth = 1;
      ctx.strokeRect(this.x(this.cursor[1]) - this.dx / 2 + 0.5, this.y(this.cursor[0]) - this.rowH / 2 + 0.5, this.dx - 1, this.rowH - 1);
      ctx.setLineDash([]);
    }
    this.tokenLabels(ctx, s, fg, dim, accent);
    this.layerLabels(ctx, s, bg, fg, dim, bad, accent);
    this.headBars(ctx, s, bg, dim, accent);
  }

  private tokenLabels(ctx: CanvasRenderingContext2D, s: FlowSpec, fg: string, dim: string, accent: string): void {
    ctx.font = "11px ui-monospace, SFMono-Regular, Menlo, monospace";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const top = this.y(0) + this.rowH / 2 + 4;
    s.labels.forEach((label, i) => {
      const text = label.length > LABEL_CHARS ? `${label.slice(0, LABEL_CHARS - 1)}\u2026` : label;
      ctx.save();
      ctx.translate(this.x(i), top);
      ctx.rotate(-Math.PI / 2);
      ctx.fillStyle = i === s.target ? accent : i === s.source ? fg : dim;
      ctx.fillText(text, 0, 0);
      ctx.restore();
    });
  }

  private layerLabels(ctx: CanvasRenderingContext2D, s: FlowSpec, bg: string, fg: string, dim: string, bad: string,
    accent: string): void {
    const x = this.left;
    ctx.fillStyle = bg;
    ctx.fillRect(x, 0, LABEL_W - 2, TOP + (this.n + 1) * this.rowH);
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    for (let r = 0; r <= this.n; r++) {
      const y = this.y(r);
      ctx.font = "bold 11px ui-monospace, SFMono-Regular, Menlo, monospace";
      ctx.fillStyle = r === s.selectedRow ? accent : fg;
      ctx.fillText(r === this.n ? "out" : `L${s.layers[r]}`, x + 3, r === this.n ? y : y - 7);
      if (r === this.n) continue;
      const e = s.completeness ? s.completeness[r] : NaN;
      const flagged = e > s.flag;
      ctx.font = `${flagged ? "bold " : ""}10px ui-monospace, SFMono-Regular, Menlo, monospace`;
      ctx.fillStyle = flagged ? bad : dim;
      ctx.fillText(Number.isNaN(e) ? "\u2014" : `${(100 * e).toPrecision(2)}%${flagged ? " !" : ""}`, x + 3, y + 7);
    }
  }

  private headBars(ctx: CanvasRenderingContext2D, s: FlowSpec, bg: string, dim: string, accent: string): void {
    if (!s.heads || !this.barW || !s.nHeads) return;
    const x0 = this.barX();
    const bw = (this.barW - 10) / s.nHeads;
    ctx.fillStyle = bg;
    ctx.fillRect(x0, 0, this.barW + 4, TOP + (this.n + 1) * this.rowH);
    ctx.fillStyle = dim;
    ctx.font = "10px ui-monospace, SFMono-Regular, Menlo, monospace";
    ctx.textAlign = "left";
    ctx.fillText(`H0\u2013${s.nHeads - 1}`, x0 + 4, this.y(this.n));
    for (let r = 0; r < this.n; r++) {
      const row = s.heads.subarray(r * s.nHeads, (r + 1) * s.nHeads);
      let m = 0;
      for (const v of row) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
      const mid = this.y(r);
      const half = this.rowH / 2 - 4;
      ctx.fillStyle = dim;
      ctx.fillRect(x0 + 4, mid, this.barW - 10, 0.5);
      row.forEach((v, hd) => {
        const bx = x0 + 4 + hd * bw;
        if (hd === s.selectedHead) {
          ctx.strokeStyle = accent;
          ctx.lineWidth = 1.5;
          ctx.strokeRect(bx + 0.5, mid - half, Math.max(1, bw - 1), 2 * half);
        }
        if (!Number.isFinite(v) || !(m > 0)) return;
        const hgt = (half * Math.abs(v)) / m;
        ctx.fillStyle = colourFor(Math.sign(v), "signed");
        ctx.fillRect(bx + 1, v > 0 ? mid - hgt : mid, Math.max(1, bw - 2), hgt);
      });
    }
  }
}
