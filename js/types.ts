// Mirrors the synced traits of the views: TokenMatrix (Model) and HeadGrid (HeadGridModel).
// Names are snake_case and identical on both sides (docs/architecture.md, house style 2).
import type { BrushStore } from "./lib/brush";

/** A tensor as made by attrwidgets/widgets/serialization.py: C-contiguous, little-endian. */
export interface TensorDict {
  buffer: DataView | ArrayBuffer | Uint8Array; // raw bytes; ipywidgets delivers a DataView
  dtype: "float32" | "float16";
  shape: number[];
}

export type Segment = "system" | "user" | "assistant" | "prompt" | "generated";

/** attrwidgets.core.tokens.Token.to_dict(); `text` and `clean` are UNTRUSTED (textContent only). */
export interface TokenRecord {
  id: number;
  text: string; // the tokenizer's piece ("Ġthe", "<|im_end|>")
  clean: string; // what it decodes to in context (" the")
  segment: Segment;
  special: boolean;
}

/** AttrWidget's traits (attrwidgets/widgets/base.py): the selection vocabulary, the same name, type and meaning
 * in every view (docs/architecture.md, "Selection"), and the status every view shows. */
export interface ViewBase {
  tokens: TokenRecord[]; // (T,) every position the view shows (UNTRUSTED text)
  selected_position: number; // a position: absolute index into tokens; -1 none; the key linked views share; two-way
  selected_target: number; // a row: index into target_positions; -1 none; two-way
  selected_layer: number; // a layer index; -1 none; two-way
  selected_head: number; // a head of selected_layer; -1 none; two-way
  selected_node: string; // an attribution-graph node id; '' none; two-way
  pinned: string[]; // pinned graph node ids, in pin order; two-way
  busy: boolean; // the kernel is computing
  busy_estimate: string; // while busy with long work: "about 40 s"
  error: string; // non-empty: shown in a banner; the view keeps working
  llm_id: string; // the model's name ("model_id" is taken: ipywidgets uses it for the comm id)
}

export interface Model extends ViewBase {
  target_positions: number[]; // (n_targets,): index into tokens of each explained target
  scores: TensorDict | null; // (n_targets, n_positions); rows targets, columns sources; NaN = not computed
  target_prob: TensorDict | null; // (n_targets,) p(y_i | prefix)
  target_entropy: TensorDict | null; // (n_targets,) entropy (nats) of the next-token distribution
  completeness_error: TensorDict | number[] | null; // (n_targets,) IG relative error; NaN = not computed
  method: string; // two-way
  methods: string[]; // methods the selector offers
  n_steps: number; // integrated-gradients steps; two-way
  normalization: "row" | "global";
  sign_mode: "signed" | "absolute";
  hide_special: boolean;
  prefetch: boolean; // the kernel computes the other targets while the user reads (aw.explore turns it on)
  completeness_tolerance: number; // the completeness error the view warns above
  refining: [number, number][]; // [row, gradient evaluations] of rows shown as an answer still being refined
  head_split_of: number[]; // [layer, head] that head_split shows (a head selected in a linked grid); [] none
  head_split: TensorDict | null; // (n_targets, n_positions): what that head carries from each source; NaN = not computed
  head_split_contribution: TensorDict | null; // (n_targets,) the head's whole contribution: each row's sum
}

/** The part of anywidget's model API the views use (also implemented by export_html's fake model). */
export interface AnyModel<T> {
  get<K extends keyof T>(key: K): T[K];
  set<K extends keyof T>(key: K, value: T[K]): void;
  save_changes(): void;
  on(event: string, callback: () => void): void;
  off(event?: string | null, callback?: (() => void) | null): void;
}

export interface RenderProps<T> {
  model: AnyModel<T>;
  el: HTMLElement;
  brush?: BrushStore; // given by the Explorer to each of its parts (docs/linking.md, brushing); none on its own
}

export type HeadStatistic = "contribution" | "entropy" | "source_weight" | "max_weight";

// Mirrors the synced traits of attrwidgets/widgets/head_grid.py::HeadGrid (L layers, H heads, T tokens).
export interface HeadGridModel extends ViewBase {
  target_positions: number[]; // (n_targets,): index into tokens of each target
  query_positions: number[]; // (n_targets,): position whose next-token logit explains row i
  target_labels: string[]; // (n_targets,): text of each explained token (UNTRUSTED)
  n_layers: number;
  n_heads: number;
  contributions: TensorDict | null; // (L, H) rows layers, columns heads; DePass share of the target logit; NaN = not computed
  attention_stats: TensorDict | null; // (3, L, H): [entropy (nats), max weight, weight on selected_position] at the query
  thumbnails: TensorDict | null; // (L, H, S, S) float16: each head's pattern, rows queries, columns keys, max-pooled
  detail_attention: TensorDict | null; // (T, T) float16, on request: the selected head's pattern
  detail_contribution: TensorDict | null; // (T,), on request: the selected head's direct contribution per source
  detail_key: number[]; // [layer, head, target row] the detail traits belong to; [] none
  statistic: HeadStatistic; // what colours the cells; two-way
  prefetch: boolean; // the kernel computes the other targets while the user reads (aw.explore turns it on)
  mode: "depass" | "attention"; // attention: no DePass (statistic "contribution" unavailable)
  target_logit: number | null; // the real logit of the target; null = not computed
  completeness_error: TensorDict | null; // (n_targets,) each row's worst DePass split error; NaN = not computed
}
