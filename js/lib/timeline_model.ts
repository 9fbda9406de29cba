// Mirrors the synced traits of attrwidgets/widgets/diffusion_timeline.py::DiffusionTimeline (T positions,
// n_rows unmasked tokens, n_steps denoising steps), and the arithmetic the view does on them.
import type { TensorDict, ViewBase } from "../types";
import type { Tensor } from "./tensor";

export type ScoreKind = "l2" | "signed";

export interface TimelineModel extends ViewBase {
  n_prompt: number;
  n_denoising_steps: number;
  mask_text: string; // how a masked position is shown (UNTRUSTED text)
  masked: TensorDict | null; // (n_steps + 1, T): 1 where masked entering step s (last row: after the last step)
  target_positions: number[]; // (n_rows,) position of each unmasked token, in unmasking order
  row_step: number[]; // (n_rows,) the step that unmasked each row
  scores: TensorDict | null; // (n_rows, T) rows unmasked tokens, columns positions; L2 norm over D
  signed_scores: TensorDict | null; // (n_rows, T) the signed sum over D
  completeness_error: TensorDict | null; // (n_rows,) relative; NaN = unknown
  flag_error: number; // rows above it are flagged
  layer: string; // two-way; live: changing it recomputes
  shown_layer: string; // the layer of the data shown
  layer_choices: string[];
  selected_step: number; // the step shown; -1 = the final sequence; two-way
  score_kind: ScoreKind; // two-way
  heatmap: "steps" | "rows"; // two-way
  normalization: "row" | "global"; // two-way
  can_compute: boolean;
}

/** Rows unmasked at `step`, in unmasking order. */
export function rowsAt(rowStep: number[], step: number): number[] {
  const out: number[] = [];
  rowStep.forEach((s, r) => {
    if (s === step) out.push(r);
  });
  return out;
}

/** (n_steps, T): each step's rows summed (NaN where a step unmasked none), as DiffusionAttribution.step_heatmap()
 * does: float32 rounding after every add, in row order, so the bytes match numpy's. */
export function stepHeatmap(scores: Tensor, rowStep: number[], nSteps: number): Float32Array {
  const t = scores.shape[1] ?? 0;
  const out = new Float32Array(nSteps * t).fill(NaN);
  const started = new Uint8Array(nSteps);
  rowStep.forEach((s, r) => {
    if (s < 0 || s >= nSteps) return;
    const src = scores.data.subarray(r * t, (r + 1) * t);
    const dst = out.subarray(s * t, (s + 1) * t);
    if (!started[s]) {
      dst.set(src);
      started[s] = 1;
      return;
    }
    for (let p = 0; p < t; p++) dst[p] = Math.fround(dst[p] + src[p]);
  });
  return out;
}

/** Is position p masked entering step s (s = n_steps: after the last step)? */
export function isMasked(masked: Tensor | null, s: number, p: number): boolean {
  if (!masked || s < 0) return false;
  const t = masked.shape[1] ?? 0;
  return masked.data[s * t + p] > 0.5;
}

/** Largest finite |v| of each row of a (rows, T) array, or one global value for all. */
export function rowScales(data: Float32Array, nRows: number, t: number, global: boolean): Float64Array {
  const out = new Float64Array(nRows);
  for (let r = 0; r < nRows; r++) {
    let m = 0;
    for (let p = 0; p < t; p++) {
      const v = data[r * t + p];
      if (Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
    }
    out[r] = m;
  }
  if (global) out.fill(out.reduce((a, b) => Math.max(a, b), 0));
  return out;
}
