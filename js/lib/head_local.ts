// Standalone page only (attrwidgets.to_html of a HeadGrid): there is no kernel, so this answers what the
// kernel would, from tensors embedded in the page. It sets the same traits HeadGrid's Python side sets
// (contributions of the selected row, attention statistics, the open head's detail), so the view's render()
// runs unchanged. The numbers match attrwidgets/widgets/head_stats.py.
import type { AnyModel, HeadGridModel, TensorDict } from "../types";
import { decodeTensor, encodeTensor, type Tensor } from "./tensor";

export interface StandaloneRow {
  contributions: TensorDict; // (L, H)
  per_source: TensorDict; // (L, H, T)
  logit: number | null;
  completeness_error: number | null;
}

export interface StandaloneData {
  attention: TensorDict | null; // (L, H, T, T) every pattern; null when too large to embed
  query_attention: TensorDict | null; // (n_targets, L, H, T): the attention row at each target's query position
  rows: Record<string, StandaloneRow>; // target rows computed in the kernel before the export
  note: string; // shown when a head opens and its pattern is not embedded
}

const nan = (n: number) => new Float32Array(n).fill(NaN);

export function standalone(model: AnyModel<HeadGridModel>, data: StandaloneData): void {
  const nl = model.get("n_layers");
  const nh = model.get("n_heads");
  const t = (model.get("tokens") || []).length;
  const attention = decodeTensor(data.attention);
  const queryRows = decodeTensor(data.query_attention);
  const rows = new Map<number, { c: Tensor | null; ps: Tensor | null; r: StandaloneRow }>();
  for (const [key, r] of Object.entries(data.rows || {})) {
    rows.set(Number(key), { c: decodeTensor(r.contributions), ps: decodeTensor(r.per_source), r });
  }
  const current = () => (model.get("mode") === "depass" ? rows.get(model.get("selected_target")) : undefined);

  function target(): void {
    const row = current();
    model.set("contributions", encodeTensor(row?.c?.data.slice() ?? nan(nl * nh), [nl, nh]));
    model.set("target_logit", row?.r.logit ?? null);
    const errors = nan(model.get("target_positions").length);  // one per row, as the kernel sends it
    rows.forEach((r, i) => {
      if (i >= 0 && i < errors.length && r.r.completeness_error != null) errors[i] = r.r.completeness_error;
    });
    model.set("completeness_error", encodeTensor(errors, [errors.length]));
    stats();
    detail();
  }

  function stats(): void {
    const row = model.get("selected_target");
    const source = model.get("selected_position");
    const out = nan(3 * nl * nh);
    if (queryRows && row >= 0 && row < queryRows.shape[0]) {
      for (let i = 0; i < nl * nh; i++) {
        const w = queryRows.data.subarray((row * nl * nh + i) * t, (row * nl * nh + i + 1) * t);
        let entropy = 0;
        let max = 0;
        for (const p of w) {
          if (p > 0) entropy -= p * Math.log(p);
          if (p > max) max = p;
        }
        out[i] = entropy;
        out[nl * nh + i] = max;
        out[2 * nl * nh + i] = source >= 0 && source < t ? w[source] : NaN;
      }
    }
    model.set("attention_stats", encodeTensor(out, [3, nl, nh]));
  }

  function detail(): void {
    const l = model.get("selected_layer");
    const hd = model.get("selected_head");
    const row = model.get("selected_target");
    if (!(l >= 0 && l < nl && hd >= 0 && hd < nh)) {
      model.set("detail_attention", null);
      model.set("detail_contribution", null);
      model.set("detail_key", []);
      return;
    }
    const i = l * nh + hd;
    if (attention) model.set("detail_attention", encodeTensor(attention.data.slice(i * t * t, (i + 1) * t * t), [t, t]));
    else model.set("error", data.note);
    const ps = current()?.ps;
    model.set("detail_contribution", ps ? encodeTensor(ps.data.slice(i * t, (i + 1) * t), [t]) : null);
    model.set("detail_key", [l, hd, row]);
  }

  const on = (traits: (keyof HeadGridModel)[], fn: () => void) => traits.forEach((k) => model.on(`change:${k}`, fn));
  on(["selected_target", "mode"], target);
  on(["selected_position"], stats);
  on(["selected_layer", "selected_head"], detail);
}
