// Mirrors the synced traits of attrwidgets/widgets/layer_flow.py::LayerFlow (T tokens, H heads, n shown layers).
// Kept beside the view's helpers (js/types.ts holds TokenMatrix and HeadGrid); names identical on both sides.
import type { TensorDict, ViewBase } from "../types";

export type FlowRoute = "layer" | "composed" | "att" | "mlp";
export type BaselineRoute = "layer" | "att" | "mlp";

export interface LayerFlowModel extends ViewBase {
  target_positions: number[]; // (n_targets,) positions that can be targets; selected_target indexes it
  n_layers: number; // the model's block count
  n_heads: number;
  layers: number[]; // the shown layers, bottom-up; two-way
  route: FlowRoute; // two-way
  baseline_layer: string; // two-way; one of baseline_choices.layer
  baseline_att: string;
  baseline_mlp: string;
  baseline_choices: Record<BaselineRoute, string[]>; // route -> its valid baselines
  computed_baselines: Record<BaselineRoute, string[]>; // route -> baselines with any computed column
  threshold: number; // paths are drawn for |share| above it; two-way
  values: TensorDict | null; // (n, T): row r = layers[r], columns sources; signed attribution; NaN = not computed
  shares: TensorDict | null; // (n, T): values / sum |values| per row (circle area |share|, colour its sign)
  head_values: TensorDict | null; // (n, H): per-head totals (att), slices (mlp), terms (composed); null for layer
  completeness_error: TensorDict | null; // (n,) relative completeness error of each shown column; NaN = not computed
  flag_error: number; // columns above it are flagged
  sum_heads: boolean; // att: the sum over heads (true) or selected_head's own column; two-way
  can_compute: boolean; // live: the kernel computes missing columns
}
