// Standalone page only (attrwidgets.to_html of a LayerAttribution or a LayerFlow): there is no kernel, so this
// fills the traits the kernel would (values, shares, head_values, completeness_error) from the columns embedded in
// the page, for any route, baseline, target and head. The numbers follow widgets/flow_rows.py flow_row().
import type { AnyModel, TensorDict } from "../types";
import type { BaselineRoute, FlowRoute, LayerFlowModel } from "./flow_model";
import { decodeTensor, encodeTensor, type Tensor } from "./tensor";

/** One (route, baseline, layer): the computed target columns only, in `targets` order. */
export interface EmbeddedColumns {
  route: BaselineRoute;
  baseline: string;
  layer: number;
  targets: number[];
  scores: TensorDict | null; // layer (k, T); att (k, H, T); mlp null
  total: TensorDict | null; // mlp (k,): sum over D of u->z
  per_head: TensorDict | null; // mlp (k, H): per-head slices; null when D is not a multiple of H
  expected: TensorDict; // (k,) or att (k, H): finite = computed
  error: TensorDict; // (k,) or att (k, H)
}

export interface StandaloneData {
  columns: EmbeddedColumns[];
}

interface Cols { rowOf: Map<number, number>; scores: Tensor | null; total: Tensor | null; perHead: Tensor | null;
  expected: Tensor; error: Tensor }

const PARTS: Record<FlowRoute, BaselineRoute[]> = { layer: ["layer"], composed: ["att", "mlp"], att: ["att"], mlp: ["mlp"] };

export function standalone(model: AnyModel<LayerFlowModel>, data: StandaloneData): void {
  const store = new Map<string, Cols>();
  for (const c of data.columns || []) {
    const expected = decodeTensor(c.expected);
    const error = decodeTensor(c.error);
    if (!expected || !error) continue;
    store.set(`${c.route}|${c.baseline}|${c.layer}`, {
      rowOf: new Map(c.targets.map((j, k) => [j, k])), scores: decodeTensor(c.scores), total: decodeTensor(c.total),
      perHead: decodeTensor(c.per_head), expected, error,
    });
  }
  const nh = model.get("n_heads");

  /** [values (T), heads (H) | null, error] of one layer row, or null while not computed. */
  function row(route: FlowRoute, layer: number, j: number, head: number, t: number)
    : [Float64Array, Float64Array | null, number] | null {
    const base: Record<BaselineRoute, string> = {
      layer: model.get("baseline_layer"), att: model.get("baseline_att"), mlp: model.get("baseline_mlp"),
    };
    const found = PARTS[route].map((p) => store.get(`${p}|${base[p]}|${layer}`));
    if (found.some((c) => !c || !c.rowOf.has(j))) return null;
    const has = (c: Cols, hd: number) => {
      const k = c.rowOf.get(j) as number;
      const e = c.expected.data;
      if (c.expected.shape.length === 1) return Number.isFinite(e[k]);
      if (hd >= 0) return Number.isFinite(e[k * nh + hd]);
      for (let h = 0; h < nh; h++) if (!Number.isFinite(e[k * nh + h])) return false;
      return true;
    };
    if (route === "layer") {
      const c = found[0] as Cols;
      if (!has(c, -1) || !c.scores) return null;
      const k = c.rowOf.get(j) as number;
      return [Float64Array.from(c.scores.data.subarray(k * t, (k + 1) * t)), null, c.error.data[k]];
    }
    const att = route === "mlp" ? null : (found[0] as Cols);
    const mlp = route === "mlp" ? (found[0] as Cols) : route === "composed" ? (found[1] as Cols) : null;
    let s: Float32Array | null = null; // (H, T) of the target
    let attErr = -Infinity;
    if (att) {
      if (!has(att, route === "att" ? head : -1) || !att.scores) return null;
      const k = att.rowOf.get(j) as number;
      s = att.scores.data.subarray(k * nh * t, (k + 1) * nh * t);
      for (let h = 0; h < nh; h++) attErr = Math.max(attErr, att.error.data[k * nh + h]);
    }
    const headTotals = () => {
      const out = new Float64Array(nh);
      for (let h = 0; h < nh; h++) for (let i = 0; i < t; i++) out[h] += (s as Float32Array)[h * t + i];
      return out;
    };
    if (route === "att") {
      const k = (att as Cols).rowOf.get(j) as number;
      const values = new Float64Array(t);
      for (let h = 0; h < nh; h++) {
        if (head >= 0 && h !== head) continue;
        for (let i = 0; i < t; i++) values[i] += (s as Float32Array)[h * t + i];
      }
      return [values, headTotals(), head >= 0 ? att!.error.data[k * nh + head] : attErr];
    }
    if (!mlp || !has(mlp, -1)) return null;
    const m = mlp.rowOf.get(j) as number;
    const slices = mlp.perHead ? Float64Array.from(mlp.perHead.data.subarray(m * nh, (m + 1) * nh)) : null;
    if (route === "mlp") {
      const values = new Float64Array(t);
      values[j] = mlp.total ? mlp.total.data[m] : NaN;
      return [values, slices, mlp.error.data[m]];
    }
    if (!slices) return null;
    const values = new Float64Array(t);
    for (let h = 0; h < nh; h++) for (let i = 0; i < t; i++) values[i] += slices[h] * (s as Float32Array)[h * t + i];
    const terms = headTotals().map((v, h) => v * slices[h]);
    return [values, terms, Math.max(attErr, mlp.error.data[m])];
  }

  function refresh(): void {
    const t = (model.get("tokens") || []).length;
    const layers = model.get("layers") || [];
    const route = model.get("route");
    const targets = model.get("target_positions") || [];
    const sel = model.get("selected_target");
    const j = sel >= 0 && sel < targets.length ? targets[sel] : -1;
    const n = layers.length;
    const values = new Float32Array(n * t).fill(NaN);
    const shares = new Float32Array(n * t).fill(NaN);
    const heads = new Float32Array(n * nh).fill(NaN);
    const errors = new Float32Array(n).fill(NaN);
    layers.forEach((layer, r) => {
      const head = model.get("sum_heads") ? -1 : model.get("selected_head");
      const got = j >= 0 ? row(route, layer, j, head, t) : null;
      if (!got) return;
      const [v, hv, e] = got;
      let total = 0;
      for (const x of v) if (!Number.isNaN(x)) total += Math.abs(x);
      v.forEach((x, i) => {
        values[r * t + i] = x;
        shares[r * t + i] = Number.isNaN(x) ? NaN : total > 0 ? x / total : 0;
      });
      if (hv) heads.set(hv, r * nh);
      errors[r] = e;
    });
    model.set("values", encodeTensor(values, [n, t]));
    model.set("shares", encodeTensor(shares, [n, t]));
    model.set("head_values", route === "layer" ? null : encodeTensor(heads, [n, nh]));
    model.set("completeness_error", encodeTensor(errors, [n]));
  }

  // What the kernel does (widgets/layer_flow.py): a head chosen is a head shown, none chosen shows their sum.
  model.on("change:selected_head", () => model.set("sum_heads", model.get("selected_head") < 0));
  const traits: (keyof LayerFlowModel)[] = ["route", "baseline_layer", "baseline_att", "baseline_mlp", "layers",
    "selected_target", "selected_head", "sum_heads", "target_positions"];
  traits.forEach((k) => model.on(`change:${k}`, refresh));
}
