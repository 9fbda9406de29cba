// The layer flow's marks, painted on the canvas FlowCanvas prepares: the paths from each source whose share is
// above the threshold to the target in the row above, then the token circles (area = |share|, colour = sign;
// dashed where not computed; the output row on top). FlowCanvas keeps the geometry, labels, bars and input.
import { colourFor } from "./colour";
import type { FlowSpec } from "./flow_canvas";

export interface FlowGeometry {
  x(pos: number): number; // centre of token `pos`
  y(row: number): number; // centre of row `row` (0 = the first shown layer, n = the output row)
  n: number; // shown layers
  t: number; // tokens
}

const shareOf = (s: FlowSpec, t: number, r: number, i: number) => (s.shares ? s.shares[r * t + i] : NaN);

export function paintPaths(ctx: CanvasRenderingContext2D, s: FlowSpec, g: FlowGeometry): void {
  const share = (r: number, i: number) => shareOf(s, g.t, r, i);
  for (let r = 0; r < g.n && s.target >= 0; r++) {
    for (let i = 0; i < g.t; i++) {
      const v = share(r, i);
      if (!(Math.abs(v) > s.threshold)) continue;
      const [x0, y0, x1, y1] = [g.x(i), g.y(r), g.x(s.target), g.y(r + 1)];
      ctx.strokeStyle = colourFor(Math.sign(v) * (0.35 + 0.65 * Math.min(1, Math.abs(v) * 2)), "signed");
      ctx.lineWidth = 0.75 + 6 * Math.abs(v);
      ctx.beginPath();
      ctx.moveTo(x0, y0);
      ctx.bezierCurveTo(x0, (y0 + y1) / 2, x1, (y0 + y1) / 2, x1, y1);
      ctx.stroke();
    }
  }
}

export function paintCircles(ctx: CanvasRenderingContext2D, s: FlowSpec, g: FlowGeometry, rMax: number,
  c: { dim: string; accent: string }): void {
  const share = (r: number, i: number) => shareOf(s, g.t, r, i);
  for (let r = 0; r <= g.n; r++) {
    const y = g.y(r);
    for (let i = 0; i < g.t; i++) {
      const x = g.x(i);
      ctx.lineWidth = 1;
      ctx.setLineDash([]);
      if (r === g.n) { // the output row: the target, and the other positions as dots
        ctx.fillStyle = i === s.target ? c.accent : c.dim;
        ctx.beginPath();
        ctx.arc(x, y, i === s.target ? rMax * 0.7 : 1.5, 0, 2 * Math.PI);
        ctx.fill();
        continue;
      }
      const v = share(r, i);
      ctx.beginPath();
      if (Number.isNaN(v)) { // not computed
        ctx.strokeStyle = c.dim;
        ctx.setLineDash([2, 2]);
        ctx.arc(x, y, 3.5, 0, 2 * Math.PI);
        ctx.stroke();
        ctx.setLineDash([]);
      } else {
        ctx.arc(x, y, Math.max(1.25, rMax * Math.sqrt(Math.min(1, Math.abs(v)))), 0, 2 * Math.PI);
        ctx.fillStyle = v === 0 ? c.dim : colourFor(Math.sign(v) * (0.45 + 0.55 * Math.min(1, Math.abs(v) * 2)), "signed");
        ctx.fill();
        if (v !== 0) {
          ctx.strokeStyle = colourFor(Math.sign(v), "signed");
          ctx.stroke();
        }
      }
      if (i === s.target || i === s.source) {
        ctx.strokeStyle = c.accent;
        ctx.lineWidth = 1.5;
        ctx.setLineDash(i === s.target ? [] : [3, 2]);
        ctx.beginPath();
        ctx.arc(x, y, rMax + 1.5, 0, 2 * Math.PI);
        ctx.stroke();
        ctx.setLineDash([]);
      }
    }
  }
}
