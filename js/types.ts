// Mirrors the synced traits of attrwidgets/widgets/token_matrix.py::TokenMatrix.
// Names are snake_case and identical on both sides (DESIGN.md house style 2).

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

export interface Model {
  tokens: TokenRecord[]; // (n_positions,): prompt, then generated tokens
  target_positions: number[]; // (n_targets,): index into tokens of each explained target
  scores: TensorDict | null; // (n_targets, n_positions); rows targets, columns sources; NaN = not computed
  target_prob: TensorDict | null; // (n_targets,) p(y_i | prefix)
  target_entropy: TensorDict | null; // (n_targets,) entropy (nats) of the next-token distribution
  completeness_error: TensorDict | number[] | null; // (n_targets,) IG relative error; NaN = not computed
  selected_target: number; // row index into target_positions; two-way
  method: string; // two-way
  methods: string[]; // methods the selector offers
  n_steps: number; // integrated-gradients steps; two-way
  normalization: "row" | "global";
  sign_mode: "signed" | "absolute";
  hide_special: boolean;
  busy: boolean; // the kernel is computing
  error: string; // non-empty: shown in a banner; the view keeps working
  llm_id: string; // the model's name ("model_id" is taken: ipywidgets uses it for the comm id)
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
}
