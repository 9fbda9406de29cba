// DiffusionTimeline view: layer IG at every denoising step of a masked-diffusion LM. A scrubber over the steps,
// the sequence at the step (masks as the mask text, the tokens it unmasks highlighted, tinted by the selected
// token's attribution), that attribution as bars over every position, and the steps x positions heatmap.
// Python side: attrwidgets/widgets/diffusion_timeline.py (same trait names, see lib/timeline_model.ts).
import type { RenderProps } from "./types";
import { checksumFloat32 } from "./lib/checksum";
import { formatValue, legendGradient, type SignMode } from "./lib/colour";
import { h, onCommit } from "./lib/dom";
import { labeled } from "./lib/layout";
import { decodeTensor, row } from "./lib/tensor";
import { TimelineCanvas } from "./lib/timeline_canvas";
import { isMasked, rowScales, rowsAt, stepHeatmap, type TimelineModel } from "./lib/timeline_model";
import { injectTimelineStyle } from "./lib/timeline_style";
import { renderStepText } from "./lib/timeline_text";
import { tokenLabel } from "./lib/token_text";
import { createView, inRange, selection, type View } from "./lib/view_base";

const REDRAW_TRAITS = [
  "tokens", "n_prompt", "n_denoising_steps", "mask_text", "masked", "target_positions", "row_step", "scores",
  "signed_scores", "completeness_error", "flag_error", "layer", "shown_layer", "layer_choices", "selected_target",
  "selected_position", "selected_step", "score_kind", "heatmap", "normalization", "can_compute", "llm_id",
] as const;

type Timeline = View<TimelineModel>;

function select(options: [string, string][], onChange: (value: string) => void): HTMLSelectElement {
  const s = h("select");
  s.append(...options.map(([v, text]) => Object.assign(h("option", "", text), { value: v })));
  s.addEventListener("change", () => onChange(s.value));
  return s;
}

function button(text: string, name: string, onClick: () => void): HTMLButtonElement {
  const b = h("button", "", text);
  Object.assign(b, { type: "button", title: name });
  b.setAttribute("aria-label", name);
  b.addEventListener("click", onClick);
  return b;
}

// A row's attribution is over the sequence at ITS step: the row and the step move together (as in Python).
const rowStep = (model: Timeline["model"]) => model.get("row_step") || [];

function goRow({ model, write }: Timeline, r: number): void {
  write("selected_target", r);
  write("selected_step", rowStep(model)[r] ?? -1);
}

function goStep({ model, write }: Timeline, s: number): void {
  const n = model.get("n_denoising_steps") || 0;
  if (n === 0) return;
  const step = Math.max(0, Math.min(n - 1, s));
  const cur = model.get("selected_target");
  write("selected_step", step);
  if (rowStep(model)[cur] !== step) write("selected_target", rowsAt(rowStep(model), step)[0] ?? -1);
}

/** The toolbar: the layer (typed, with the known names offered) in the row; scores, heatmap and scale in the menu
 * when narrow. */
function controls({ write, toolbar }: Timeline) {
  const layerInput = h("input");
  const choices = h("datalist");
  choices.id = `aw-layers-${Math.random().toString(36).slice(2, 10)}`;
  Object.assign(layerInput, { type: "text", spellcheck: false, placeholder: "block 0" });
  layerInput.setAttribute("list", choices.id);
  onCommit(layerInput, () => write("layer", layerInput.value.trim()));  // write() skips an unchanged value
  const layerLabel = labeled("layer", layerInput);
  layerLabel.classList.add("aw-tl-layer");
  const kindSel = select([["l2", "L2 norm"], ["signed", "signed sum"]], (v) => write("score_kind", v as TimelineModel["score_kind"]));
  const hmSel = select([["steps", "per step"], ["rows", "per token"]], (v) => write("heatmap", v as TimelineModel["heatmap"]));
  const normSel = select([["row", "per row"], ["global", "global"]], (v) => write("normalization", v as TimelineModel["normalization"]));
  const bar = toolbar({
    primary: [layerLabel], secondary: [labeled("scores", kindSel), labeled("heatmap", hmSel), labeled("scale", normSel)],
  });
  return { bar, layerInput, choices, kindSel, hmSel, normSel };
}

/** The step scrubber: previous, a slider over the steps, next, and the step shown. */
function scrubber(view: Timeline) {
  const { model } = view;
  const prev = button("\u25c0", "previous step", () => goStep(view, model.get("selected_step") - 1));
  const next = button("\u25b6", "next step", () => goStep(view, model.get("selected_step") + 1));
  const slider = h("input");
  Object.assign(slider, { type: "range", min: "0", step: "1" });
  slider.setAttribute("aria-label", "denoising step");
  slider.addEventListener("input", () => goStep(view, Number(slider.value)));
  const stepOut = h("output");
  const scrub = h("div", "aw-tl-scrub");
  scrub.append(prev, slider, next, stepOut);
  return { scrub, prev, next, slider, stepOut };
}

type Parts = ReturnType<typeof controls> & ReturnType<typeof scrubber> & {
  view: Timeline; infoText: HTMLSpanElement; badge: HTMLSpanElement; text: HTMLDivElement;
  legendText: HTMLSpanElement; legendBar: HTMLSpanElement; canvas: TimelineCanvas;
};

function render({ model, el, brush }: RenderProps<TimelineModel>) {
  // keys: arrows belong to the step slider, not JupyterLab
  const view = createView(model, el, { className: "aw-diffusion-timeline", keys: true, styles: [injectTimelineStyle],
    brush });
  const info = h("div", "aw-info");
  const badge = h("span", "aw-badge");
  const infoText = h("span");
  info.append(infoText, " ", badge);
  const hint = h("div", "aw-hint", "Scrub the steps; click a token unmasked so far to explain it (the scrubber follows " +
    "its step); click a mask or prompt token (shift-click any) or a bar to pick the source; click the heatmap to jump " +
    "to that step or token (its column becomes the source).");
  const text = h("div", "aw-text");
  const legend = h("div", "aw-legend");
  const legendBar = h("span", "aw-legend-bar");
  const legendText = h("span");
  legend.append(legendText, legendBar);
  const canvas = new TimelineCanvas(view.tooltip, {
    source: (p) => view.write("selected_position", p),
    cell: (k, p) => {
      if (model.get("heatmap") === "rows") goRow(view, k);
      else goStep(view, k);
      if (p >= 0) view.write("selected_position", p);
    },
    hover: view.hover,
  });
  view.onBrush(({ hovered, picked }) => {
    canvas.brushed = hovered >= 0 ? hovered : picked;
    canvas.redraw();
  });
  const box = h("div", "aw-tl-box");
  box.appendChild(canvas.canvas);
  canvas.stickTo(box);
  const parts: Parts = {
    ...controls(view), ...scrubber(view), view, infoText, badge, text, legendText, legendBar, canvas,
  };
  return view.start({
    top: [parts.bar.element, parts.choices], body: [parts.scrub, info, hint, text, legend, box],
    traits: REDRAW_TRAITS, draw: (width) => draw(parts, width), resize: "redraw",
  });
}

/** What one draw works from: the model's traits decoded and checked, the selection in range, and the state shown
 * (after the selected step: its new tokens revealed). */
function frame(model: Timeline["model"]) {
  const tokens = model.get("tokens") || [];
  const t = tokens.length;
  const nSteps = model.get("n_denoising_steps") || 0;
  const steps = rowStep(model);
  const targets = model.get("target_positions") || [];
  const nRows = targets.length;
  const kind = model.get("score_kind");
  const masked = decodeTensor(model.get("masked"));
  const values = decodeTensor(model.get(kind === "signed" ? "signed_scores" : "scores"));
  const compl = decodeTensor(model.get("completeness_error"));
  for (const [name, tensor, size] of [["masked", masked, (nSteps + 1) * t], ["scores", values, nRows * t],
    ["completeness_error", compl, nRows]] as const) {
    if (tensor && tensor.data.length !== size) throw new Error(`${name} shape [${tensor.shape}] does not match ${nRows} rows, ${nSteps} steps, ${t} tokens`);
  }
  const { target: sel, position: source } = selection(model, { target: nRows, position: t });
  const step = inRange(model.get("selected_step"), nSteps);
  const after = step >= 0 ? step + 1 : nSteps;
  const stepRows = step >= 0 ? rowsAt(steps, step) : [];
  const rowOf = new Map<number, number>();
  steps.forEach((s, r) => {
    if (s < after) rowOf.set(targets[r], r);
  });
  const perStep = model.get("heatmap") !== "rows";
  const cells = !values ? null : perStep ? stepHeatmap(values, steps, nSteps) : values.data;
  const flag = model.get("flag_error");
  return {
    tokens, t, nSteps, steps, targets, nRows, kind, masked, sel, step, source, after, stepRows, rowOf, perStep,
    cells, flag, mode: (kind === "signed" ? "signed" : "absolute") as SignMode,
    j: sel >= 0 ? targets[sel] : -1,
    selStep: sel >= 0 ? steps[sel] : -1,
    rowValues: sel >= 0 && values ? row(values, sel) : null,
    newAt: new Set(stepRows.map((r) => targets[r])),
    byStep: Array.from({ length: nSteps }, (_, s) => new Set(rowsAt(steps, s).map((r) => targets[r]))),
    hmRows: perStep ? nSteps : nRows,
    err: sel >= 0 && compl ? compl.data[sel] : NaN,
    flaggedRows: compl ? Array.from(compl.data).filter((e) => e > flag).length : 0,
    layer: model.get("layer") || "",
    shown: model.get("shown_layer") || "",
    tokLabel: tokenLabel(tokens),
  };
}
type Frame = ReturnType<typeof frame>;

function draw(p: Parts, width: number): void {
  const { model, root, tooltip, write } = p.view;
  const f = frame(model);
  const { tokens, t, nSteps, steps, targets, nRows, kind, mode, masked, sel, step, source, j, selStep, rowValues } = f;
  const { after, newAt, rowOf, byStep, perStep, cells, hmRows, err, flag, tokLabel } = f;
  let stillMasked = 0;
  for (let q = 0; q < t; q++) if (isMasked(masked, after, q)) stillMasked += 1;
  Object.assign(root.dataset, {
    selectedStep: String(step), selectedTarget: String(sel), targetPosition: String(j), selectedSource: String(source),
    checksum: rowValues ? checksumFloat32(rowValues) : "", heatmapChecksum: cells ? checksumFloat32(cells) : "",
    newPositions: Array.from(newAt).join(","), maskedCount: String(stillMasked), flagged: String(err > flag),
    flaggedRows: String(f.flaggedRows), layer: f.layer, shownLayer: f.shown, nSteps: String(nSteps), nRows: String(nRows),
    canCompute: String(Boolean(model.get("can_compute"))), scoreKind: kind, heatmap: perStep ? "steps" : "rows",
  });
  showControls(p, f);
  showStatus(p, f);

  const scale = rowValues ? rowScales(rowValues, 1, t, false)[0] : 0;
  const describeValue = (q: number) => (rowValues ? `\n${formatValue(rowValues[q])} to #${j} ${JSON.stringify(tokLabel(j))}` : "");
  renderStepText(p.text, {
    tokens, nPrompt: model.get("n_prompt"), maskText: model.get("mask_text") || "[MASK]",
    maskedOut: (q) => isMasked(masked, after, q), rowOf, newAtStep: newAt,
    values: selStep === step ? rowValues : null, scale, mode, targetPosition: j, selectedSource: source,
    describe: (q) => {
      const r = rowOf.get(q);
      const what = isMasked(masked, after, q) ? "still masked" : r === undefined ? "prompt"
        : newAt.has(q) ? `unmasked at this step (row ${r})` : `unmasked at step ${steps[r]} (row ${r})`;
      return `#${q} ${JSON.stringify(tokLabel(q))} \u00b7 ${what}${selStep === step ? describeValue(q) : ""}`;
    },
    onRow: (r) => goRow(p.view, r), onSource: (q) => write("selected_position", q),
  }, tooltip);

  p.canvas.draw({
    t, nPrompt: model.get("n_prompt"), bars: rowValues, mode, target: j, source,
    barMasked: (q) => isMasked(masked, selStep, q),
    cells, nRows: hmRows, scales: cells ? rowScales(cells, hmRows, t, model.get("normalization") === "global") : new Float64Array(hmRows),
    rowLabel: (k) => (perStep ? `s${k}` : `#${targets[k]}`),
    cellMasked: (k, q) => isMasked(masked, perStep ? k : steps[k], q),
    cellNew: (k, q) => (perStep ? byStep[k].has(q) : targets[k] === q),
    selectedRow: perStep ? step : sel,
    describeBar: (q) => `#${q} ${JSON.stringify(tokLabel(q))}${isMasked(masked, selStep, q) ? " (a mask at that step)" : ""}` +
      `${describeValue(q)}\nclick to pick it as the source`,
    describeCell: (k, q) => {
      const v = cells ? cells[k * t + q] : NaN;
      const head = perStep ? `step ${k} (${byStep[k].size} token${byStep[k].size === 1 ? "" : "s"} summed)`
        : `#${targets[k]} ${JSON.stringify(tokLabel(targets[k]))} at step ${steps[k]}`;
      const m = isMasked(masked, perStep ? k : steps[k], q) ? " (a mask then)" : "";
      return `${head}\n\u2190 #${q} ${JSON.stringify(tokLabel(q))}${m}: ${Number.isNaN(v) ? "nothing unmasked" : formatValue(v)}`;
    },
  }, width);
}

/** The toolbar and scrubber follow the model; a static view (no model to run) cannot change the layer. */
function showControls(p: Parts, { layer, shown, kind, perStep, nSteps, step }: Frame): void {
  const { model } = p.view;
  const live = Boolean(model.get("can_compute"));
  if (document.activeElement !== p.layerInput) p.layerInput.value = layer;
  p.layerInput.disabled = !live;
  p.layerInput.title = live ? "layer to explain at: press Enter to recompute" : "static view: pass model=... to recompute";
  const names = Array.from(new Set([...(model.get("layer_choices") || []), ...(shown ? [shown] : [])]));
  if (p.choices.dataset.names !== JSON.stringify(names)) {
    p.choices.replaceChildren(...names.map((n) => Object.assign(h("option"), { value: n })));
    p.choices.dataset.names = JSON.stringify(names);
  }
  p.kindSel.value = kind;
  p.hmSel.value = perStep ? "steps" : "rows";
  p.normSel.value = model.get("normalization");
  p.bar.setModelId(model.get("llm_id") || "");
  p.slider.max = String(Math.max(0, nSteps - 1));
  p.slider.value = String(Math.max(0, step));
  p.slider.disabled = p.prev.disabled = p.next.disabled = nSteps === 0;
  p.prev.disabled ||= step <= 0;
  p.next.disabled ||= step >= nSteps - 1;
  p.stepOut.textContent = step >= 0 ? `step ${step} of ${nSteps}` : `final (${nSteps} steps)`;
}

/** The warnings, the info line with its completeness badge, and the legend. */
function showStatus(p: Parts, f: Frame): void {
  const { model } = p.view;
  const { t, layer, shown, err, flag, j, nRows, step, stepRows, targets, source, rowValues, sel, kind, perStep, mode } = f;
  const tokLabel = f.tokLabel;
  const warnings: string[] = [];
  if (t === 0) warnings.push(model.get("busy") ? "computing the first run\u2026" : "nothing to show yet.");
  if (layer && shown && layer !== shown) {
    warnings.push(model.get("busy") ? `computing layer ${JSON.stringify(layer)}\u2026 (showing ${JSON.stringify(shown)})`
      : `showing layer ${JSON.stringify(shown)}, not ${JSON.stringify(layer)}.`);
  }
  if (err > flag) {
    warnings.push(`completeness error ${(100 * err).toPrecision(2)}% above ${100 * flag}% for #${j} ` +
      `${JSON.stringify(tokLabel(j))}: raise n_steps.`);
  } else if (f.flaggedRows) warnings.push(`${f.flaggedRows} of ${nRows} tokens have a completeness error above ${100 * flag}%.`);
  p.view.status.warnBanner.textContent = warnings.join("\n");

  const parts: string[] = [];
  if (step >= 0) parts.push(`step ${step} unmasks ${stepRows.map((r) => JSON.stringify(tokLabel(targets[r]))).join(", ") || "nothing"}`);
  if (j >= 0) parts.push(`target #${j} ${JSON.stringify(tokLabel(j))}`);
  if (source >= 0 && rowValues) parts.push(`source #${source} ${JSON.stringify(tokLabel(source))} ${formatValue(rowValues[source])}`);
  p.infoText.textContent = parts.join(" \u00b7 ");
  p.badge.textContent = sel < 0 ? "" : Number.isNaN(err) ? "completeness n/a" : `completeness error ${(100 * err).toPrecision(2)}%${err > flag ? " \u26a0" : ""}`;
  p.badge.classList.toggle("aw-bad", err > flag);
  p.badge.classList.toggle("aw-hidden", sel < 0);
  p.legendText.textContent = `${kind === "signed" ? "signed sum" : "L2 norm"} of layer IG at ${shown || "?"}` +
    ` \u00b7 heatmap ${perStep ? "summed per step" : "per token"}, scaled ${model.get("normalization") === "global" ? "globally" : "per row"}` +
    " \u00b7 dot: a mask at that step";
  p.legendBar.style.background = legendGradient(mode);
}

export default { render };
