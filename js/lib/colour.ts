// Colour scales. Cells are tinted with a translucent colour over the theme background, so the same scale
// reads on JupyterLab's light and dark themes.
import type { Tensor } from "./tensor";

export type SignMode = "signed" | "absolute";
export type Normalization = "row" | "global";

const POS = [214, 39, 40]; // red: pushes the target up
const NEG = [31, 119, 180]; // blue: pushes it down
const ABS = [230, 85, 13]; // orange: magnitude only
const MAX_ALPHA = 0.8;

/** Map a raw score to [-1, 1] (signed) or [0, 1] (absolute) by max-|v| scaling, so 0 stays 0. */
export function normalise(value: number, scale: number, mode: SignMode): number {
  if (!Number.isFinite(value)) return NaN;
  const v = mode === "absolute" ? Math.abs(value) : value;
  if (!(scale > 0)) return 0;
  return Math.max(-1, Math.min(1, v / scale));
}

/** CSS colour for a normalised value; NaN (not computed) is drawn by the caller. */
export function colourFor(t: number, mode: SignMode): string {
  if (!Number.isFinite(t) || t === 0) return "transparent";
  const rgb = mode === "absolute" ? ABS : t > 0 ? POS : NEG;
  const a = Math.min(1, Math.abs(t)) * MAX_ALPHA;
  return `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${a.toFixed(3)})`;
}

/** CSS gradient for the legend bar, matching colourFor. */
export function legendGradient(mode: SignMode): string {
  if (mode === "absolute") return `linear-gradient(to right, transparent, ${colourFor(1, "absolute")})`;
  return `linear-gradient(to right, ${colourFor(-1, "signed")}, transparent, ${colourFor(1, "signed")})`;
}

function maxAbs(values: Float32Array, cols: number[] | null): number {
  let m = 0;
  const n = cols ? cols.length : values.length;
  for (let k = 0; k < n; k++) {
    const v = values[cols ? cols[k] : k];
    if (Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
  }
  return m;
}

/**
 * The scale (max |score|) each row is divided by: per row, or one global value over all rows shown.
 * Only visible columns count, so hiding special tokens (often attention sinks) rescales the rest.
 */
export function rowScales(scores: Tensor, rows: number[], cols: number[], norm: Normalization): Float64Array {
  const n = scores.shape[0] ?? 0;
  const width = scores.shape[1] ?? 0;
  const out = new Float64Array(n);
  for (const r of rows) out[r] = maxAbs(scores.data.subarray(r * width, (r + 1) * width), cols);
  if (norm === "global") {
    let g = 0;
    for (const r of rows) g = Math.max(g, out[r]);
    out.fill(g);
  }
  return out;
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "not computed";
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e4 ? v.toPrecision(3) : v.toExponential(2);
}
