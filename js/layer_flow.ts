// LayerFlow view: LIG attributions into the selected target token, one row of token circles per shown layer
// (bottom-up), paths into the target in the row above, route / baseline / head / threshold controls.
// Python side: attrwidgets/widgets/layer_flow.py (same trait names, see lib/flow_model.ts LayerFlowModel).
import type { RenderProps, TokenRecord } from "./types";
import type { BaselineRoute, FlowRoute, LayerFlowModel } from "./lib/flow_model";
import { checksumFloat32 } from "./lib/checksum";
import { formatValue, legendGradient } from "./lib/colour";
import { h } from "./lib/dom";
import { FlowCanvas } from "./lib/flow_canvas";
import { injectFlowStyle } from "./lib/flow_style";
import { labeled } from "./lib/layout";
import { decodeTensor } from "./lib/tensor";
import { renderTokenText, tokenLabel } from "./lib/token_text";
import { createView, inRange, selection, type View } from "./lib/view_base";

export { standalone } from "./lib/flow_local"; // used by the standalone HTML page only

const ROUTES: [FlowRoute, string][] = [
  ["layer", "direct z\u2192z"], ["composed", "composed ATT\u00d7MLP"], ["att", "ATT per head z\u2192u"], ["mlp", "MLP u\u2192z"],
];
const PARTS: Record<FlowRoute, BaselineRoute[]> = { layer: ["layer"], composed: ["att", "mlp"], att: ["att"], mlp: ["mlp"] };
const REDRAW_TRAITS = [
  "tokens", "target_positions", "n_layers", "n_heads", "layers", "route", "baseline_layer", "baseline_att",
  "baseline_mlp", "baseline_choices", "computed_baselines", "threshold", "values", "shares", "head_values",
  "completeness_error", "flag_error", "selected_target", "selected_position", "selected_layer", "selected_head",
  "sum_heads", "can_compute", "llm_id",
] as const;

type Flow = View<LayerFlowModel>;

function select(onChange: (value: string) => void): HTMLSelectElement {
  const s = h("select");
  s.addEventListener("change", () => onChange(s.value));
  return s;
}

function setOptions(s: HTMLSelectElement, options: [string, string][], value: string): void {
  const key = JSON.stringify(options);
  if (s.dataset.options !== key) {
    s.replaceChildren(...options.map(([v, text]) => Object.assign(h("option", "", text), { value: v })));
    s.dataset.options = key;
  }
  s.value = value;
}

/** A head chosen is shown; none chosen (-1) shows the sum over heads (sum_heads). */
function chooseHead({ write }: Flow, hd: number): void {
  write("selected_head", hd);
  write("sum_heads", hd < 0);
}

/** A token at layer row r (the output row counts as the last layer): a target becomes selected_target. */
function pick({ model, write }: Flow, r: number, pos: number, shift: boolean): void {
  const layers = model.get("layers") || [];
  const targets = model.get("target_positions") || [];
  const row = targets.indexOf(pos);
  if (r >= 0) write("selected_layer", layers[Math.min(r, layers.length - 1)] ?? -1);
  if (row >= 0 && !shift) write("selected_target", row);
  else write("selected_position", pos);
}

/** The toolbar: the route in the row; its baselines, the head and the path threshold in the menu when narrow. */
function controls(view: Flow) {
  const { write } = view;
  const routeSel = select((v) => write("route", v as FlowRoute));
  const baseSel: Record<BaselineRoute, HTMLSelectElement> = {
    layer: select((v) => write("baseline_layer", v)), att: select((v) => write("baseline_att", v)),
    mlp: select((v) => write("baseline_mlp", v)),
  };
  const baseLabels = {
    layer: labeled("baseline", baseSel.layer), att: labeled("ATT baseline", baseSel.att),
    mlp: labeled("MLP baseline", baseSel.mlp),
  };
  const headSel = select((v) => chooseHead(view, Number(v)));
  const headLabel = labeled("head", headSel);
  const slider = h("input");
  Object.assign(slider, { type: "range", min: "0", max: "0.5", step: "0.01" });
  const sliderOut = h("output");
  slider.addEventListener("input", () => write("threshold", Number(slider.value)));
  const threshold = labeled("paths above", slider);
  threshold.classList.add("aw-flow-threshold");
  threshold.append(sliderOut);
  const bar = view.toolbar({
    primary: [labeled("route", routeSel)],
    secondary: [baseLabels.layer, baseLabels.att, baseLabels.mlp, headLabel, threshold],
  });
  return { bar, routeSel, baseSel, baseLabels, headSel, headLabel, slider, sliderOut };
}

type Parts = ReturnType<typeof controls> & { view: Flow; info: HTMLDivElement; hint: HTMLDivElement;
  text: HTMLDivElement; flow: FlowCanvas };

function render({ model, el, brush }: RenderProps<LayerFlowModel>) {
  // keys: arrows and Enter belong to the flow canvas, not JupyterLab
  const view = createView(model, el, { className: "aw-layer-flow", keys: true, styles: [injectFlowStyle], brush });
  const { write } = view;
  const info = h("div", "aw-info");
  const hint = h("div", "aw-hint");
  const text = h("div", "aw-text");
  const legend = h("div", "aw-legend");
  const legendBar = h("span", "aw-legend-bar");
  legendBar.style.background = legendGradient("signed");
  legend.append(h("span", "", "circle area: share of |IG| \u00b7 colour: sign"), h("span", "", "\u2212"), legendBar,
    h("span", "", "+"));
  const flow = new FlowCanvas(view.tooltip, {
    pick: (r, pos, shift) => pick(view, r, pos, shift),
    head: (hd) => chooseHead(view,
      model.get("selected_head") === hd && model.get("route") === "att" && !model.get("sum_heads") ? -1 : hd),
    layer: (r) => write("selected_layer", (model.get("layers") || [])[r] ?? -1),
    hover: view.hover,
  });
  view.onBrush(({ hovered, picked }) => {
    flow.brushed = hovered >= 0 ? hovered : picked;
    flow.redraw();
  });
  const box = h("div", "aw-flow-box");
  box.appendChild(flow.canvas);
  flow.stickTo(box);
  const parts: Parts = { ...controls(view), view, info, hint, text, flow };
  return view.start({
    top: [parts.bar.element], body: [info, hint, text, legend, box], traits: REDRAW_TRAITS,
    draw: (width) => draw(parts, width), resize: "redraw",
  });
}

/** The toolbar shows the model's route, baselines (those a static view lacks marked), head and threshold. */
function showControls(p: Parts, route: FlowRoute, head: number, nh: number): void {
  const { model } = p.view;
  const choices = model.get("baseline_choices") || { layer: [], att: [], mlp: [] };
  const done = model.get("computed_baselines") || { layer: [], att: [], mlp: [] };
  const live = Boolean(model.get("can_compute"));
  setOptions(p.routeSel, ROUTES.map(([v, label]) => [v, label]), route);
  for (const part of ["layer", "att", "mlp"] as BaselineRoute[]) {
    const opts = (choices[part] || []).map((b): [string, string] =>
      [b, live || (done[part] || []).includes(b) ? b : `${b} (not computed)`]);
    setOptions(p.baseSel[part], opts, model.get(`baseline_${part}`));
    p.baseLabels[part].classList.toggle("aw-hidden", !PARTS[route].includes(part));
  }
  setOptions(p.headSel, [["-1", "all (sum)"], ...Array.from({ length: nh }, (_, i): [string, string] => [String(i), `H${i}`])],
    String(head));
  p.headLabel.classList.toggle("aw-hidden", route !== "att");
  p.slider.value = String(model.get("threshold"));
  p.sliderOut.textContent = `${Math.round(100 * model.get("threshold"))}%`;
  p.bar.setModelId(model.get("llm_id") || "");
}

function draw(p: Parts, width: number): void {
  const { model, root, tooltip, write } = p.view;
  const tokens: TokenRecord[] = model.get("tokens") || [];
  const targets: number[] = model.get("target_positions") || [];
  const layers: number[] = model.get("layers") || [];
  const nh = model.get("n_heads") || 0;
  const route = model.get("route");
  const t = tokens.length;
  const n = layers.length;
  const { target: sel, position: source } = selection(model, { target: targets.length, position: t });
  const j = sel >= 0 ? targets[sel] : -1;
  const layer = model.get("selected_layer"); // any layer: one not shown here is named in a warning
  const selRow = layers.indexOf(layer);
  const head = model.get("sum_heads") ? -1 : inRange(model.get("selected_head"), nh);
  const values = decodeTensor(model.get("values"));
  const shares = decodeTensor(model.get("shares"));
  const heads = decodeTensor(model.get("head_values"));
  const compl = decodeTensor(model.get("completeness_error"));
  for (const [name, tensor, size] of [["values", values, n * t], ["shares", shares, n * t], ["head_values", heads, n * nh],
    ["completeness_error", compl, n]] as const) {
    if (tensor && tensor.data.length !== size) throw new Error(`${name} shape [${tensor.shape}] does not match ${n} layers`);
  }
  const flag = model.get("flag_error");
  const computed = layers.map((_, r) => (compl ? !Number.isNaN(values?.data[r * t + Math.max(0, j)] ?? NaN) : false));
  const flagged = layers.filter((_, r) => compl && compl.data[r] > flag);
  Object.assign(root.dataset, {
    selectedTarget: String(sel), targetPosition: String(j), selectedSource: String(source), selectedLayer: String(layer),
    selectedHead: String(head), route, checksum: values ? checksumFloat32(values.data) : "",
    computedRows: String(computed.filter(Boolean).length), flagged: String(flagged.length),
    canCompute: String(Boolean(model.get("can_compute"))),
  });
  showControls(p, route, head, nh);

  const live = Boolean(model.get("can_compute"));
  const tokLabel = tokenLabel(tokens);
  p.view.status.warnBanner.textContent = warnings({
    sel, nTargets: targets.length, layers, missing: layers.filter((_, r) => !computed[r]), live,
    busy: Boolean(model.get("busy")), route, j, layer, selRow, flagged, flag, compl: compl?.data ?? null,
    page: root.classList.contains("aw-standalone"),
  }).join("\n");

  const shown = selRow >= 0 ? selRow : n - 1; // the row the running text is tinted by
  const parts: string[] = [];
  if (j >= 0) parts.push(`target #${j} ${JSON.stringify(tokLabel(j))}`);
  if (shown >= 0 && j >= 0) {
    const e = compl?.data[shown] ?? NaN;
    parts.push(`L${layers[shown]}${Number.isNaN(e) ? "" : ` completeness error ${(100 * e).toPrecision(2)}%`}`);
    if (source >= 0 && shares) parts.push(`source #${source} ${JSON.stringify(tokLabel(source))} share ` +
      `${formatValue(shares.data[shown * t + source])}`);
  }
  if (route === "att") parts.push(head >= 0 ? `head ${head}` : "all heads (sum)");
  p.info.textContent = parts.join(" \u00b7 ");
  p.hint.textContent = route === "mlp"
    ? "u\u2192z is position-wise: the target's own MLP input is its only source; the bars split it by head slice."
    : "Click a token at any layer to explain it there (shift-click: pick it as the source). Bars on the right: " +
      "per-head values; click one to pick the head.";

  const rowShares = shares && shown >= 0 ? shares.data.subarray(shown * t, (shown + 1) * t) : null;
  let scale = 0;
  for (const v of rowShares ?? []) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
  renderTokenText(p.text, {
    tokens, targetOf: new Map(targets.map((q, i) => [q, i])), values: rowShares, scale, mode: "signed",
    selectedPosition: -1, hideSpecial: false, markWhitespace: true, selectedSource: source,
    onSelect: (r) => write("selected_target", r), onSource: (q) => write("selected_position", q),
    describe: (q) => `#${q} ${JSON.stringify(tokLabel(q))}` +
      (rowShares ? `\nshare at L${layers[shown]} ${formatValue(rowShares[q])}` : ""),
  }, tooltip);
  for (const span of Array.from(p.text.querySelectorAll<HTMLElement>(".aw-tok"))) {
    span.classList.toggle("aw-selected", Number(span.dataset.position) === j);
  }

  p.flow.draw({
    labels: tokens.map((_, q) => tokLabel(q)), layers, shares: shares?.data ?? null,
    heads: heads?.data ?? null, nHeads: nh, completeness: compl?.data ?? null, flag, target: j, source,
    selectedRow: selRow, selectedHead: head, threshold: model.get("threshold"),
    describe: (r, q) => {
      if (r >= n) return `#${q} ${JSON.stringify(tokLabel(q))} (output of L${layers[n - 1]})`;
      const lines = [`L${r >= 0 ? layers[r] : "?"} source #${q} ${JSON.stringify(tokLabel(q))}` +
        (j >= 0 ? ` \u2192 target #${j} ${JSON.stringify(tokLabel(j))}` : "")];
      if (r >= 0 && shares && values) {
        const v = values.data[r * t + q];
        lines.push(Number.isNaN(v) ? "not computed" : `share ${(100 * shares.data[r * t + q]).toFixed(1)}% \u00b7 score ${formatValue(v)}`);
      }
      return lines.join("\n");
    },
    describeHead: (r, hd) => `L${layers[r]} head ${hd}: ${formatValue(heads ? heads.data[r * nh + hd] : NaN)}` +
      (route === "att" ? "\nclick to show this head" : ""),
  }, width);
}

interface WarningsOf {
  sel: number; nTargets: number; layers: number[]; missing: number[]; live: boolean; busy: boolean; route: FlowRoute;
  page: boolean; // a standalone page: only what was computed before the export is here
  j: number; layer: number; selRow: number; flagged: number[]; flag: number; compl: Float32Array | null;
}

function warnings(w: WarningsOf): string[] {
  const { missing, layers, flag } = w;
  const out: string[] = [];
  if (w.sel < 0) out.push(w.nTargets ? "no target selected: click a token." : "no target tokens.");
  else if (missing.length && !w.live) {
    const where = w.page ? " in this export" : ": pass model=... to compute it";
    out.push(`not computed${where} (layer${missing.length > 1 ? "s" : ""} ` +
      `${missing.join(", ")}, route ${w.route}, target #${w.j}).`);
  } else if (missing.length && w.busy) out.push(`computing layer${missing.length > 1 ? "s" : ""} ${missing.join(", ")}\u2026`);
  if (w.layer >= 0 && w.selRow < 0) out.push(`layer ${w.layer} is not shown here (shown: ${layers.join(", ")}).`);
  if (w.flagged.length) {
    out.push(`completeness error above ${100 * flag}% at ` +
      `${w.flagged.map((l) => `L${l} (${(100 * (w.compl as Float32Array)[layers.indexOf(l)]).toPrecision(2)}%)`).join(", ")}: ` +
      "raise n_steps.");
  }
  return out;
}

export default { render };
