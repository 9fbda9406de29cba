// DiffusionTimeline view: layer IG at every denoising step of a masked-diffusion LM. A scrubber over the steps,
// the sequence at the step (masks as the mask text, the tokens it unmasks highlighted, tinted by the selected
// token's attribution), that attribution as bars over every position, and the steps x positions heatmap.
// Python side: attrwidgets/widgets/diffusion_timeline.py (same trait names, see lib/timeline_model.ts).
import type { RenderProps } from "./types";
import { checksumFloat32 } from "./lib/checksum";
import { formatValue, legendGradient, type SignMode } from "./lib/colour";
import { debounce, h, onCommit, showWhitespace } from "./lib/dom";
import { labeled, responsiveToolbar, watchWidth } from "./lib/layout";
import { busyIndicator, listen, viewStatus } from "./lib/status";
import { decodeTensor, row } from "./lib/tensor";
import { injectStyle } from "./lib/theme";
import { TimelineCanvas } from "./lib/timeline_canvas";
import { isMasked, rowScales, rowsAt, stepHeatmap, type TimelineModel } from "./lib/timeline_model";
import { injectTimelineStyle } from "./lib/timeline_style";
import { renderStepText } from "./lib/timeline_text";
import { displayText } from "./lib/token_text";

const SAVE_DEBOUNCE_MS = 150;
const REDRAW_TRAITS = [
  "tokens", "n_prompt", "n_denoising_steps", "mask_text", "masked", "target_positions", "row_step", "scores",
  "signed_scores", "completeness_error", "flag_error", "layer", "shown_layer", "layer_choices", "selected_target",
  "selected_position", "selected_step", "score_kind", "heatmap", "normalization", "can_compute", "llm_id",
] as const;

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

function render({ model, el }: RenderProps<TimelineModel>) {
  const root = h("div", "aw-root aw-diffusion-timeline");
  if (el.closest(".aw-standalone-host")) root.classList.add("aw-standalone");
  root.dataset.lmSuppressShortcuts = "true"; // arrows belong to the step slider, not JupyterLab
  injectStyle(root);
  injectTimelineStyle(root);
  const save = debounce(() => model.save_changes(), SAVE_DEBOUNCE_MS);
  function write<K extends keyof TimelineModel>(key: K, value: TimelineModel[K]): void {
    if (model.get(key) === value) return;
    model.set(key, value);
    save();
  }
  // A row's attribution is over the sequence at ITS step: the row and the step move together (as in Python).
  const rowStep = () => model.get("row_step") || [];
  function goRow(r: number): void {
    write("selected_target", r);
    write("selected_step", rowStep()[r] ?? -1);
  }
  function goStep(s: number): void {
    const n = model.get("n_denoising_steps") || 0;
    if (n === 0) return;
    const step = Math.max(0, Math.min(n - 1, s));
    const cur = model.get("selected_target");
    write("selected_step", step);
    if (rowStep()[cur] !== step) write("selected_target", rowsAt(rowStep(), step)[0] ?? -1);
  }

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
  const busy = busyIndicator();
  const toolbar = responsiveToolbar(root, {
    primary: [layerLabel],
    secondary: [labeled("scores", kindSel), labeled("heatmap", hmSel), labeled("scale", normSel)], status: [busy],
  });

  const prev = button("\u25c0", "previous step", () => goStep(model.get("selected_step") - 1));
  const next = button("\u25b6", "next step", () => goStep(model.get("selected_step") + 1));
  const slider = h("input");
  Object.assign(slider, { type: "range", min: "0", step: "1" });
  slider.setAttribute("aria-label", "denoising step");
  slider.addEventListener("input", () => goStep(Number(slider.value)));
  const stepOut = h("output");
  const scrub = h("div", "aw-tl-scrub");
  scrub.append(prev, slider, next, stepOut);

  const tooltip = h("div", "aw-tooltip");
  const status = viewStatus(root, model, () => draw(), tooltip);
  const { errorBanner, warnBanner, redraw } = status;
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
  const canvas = new TimelineCanvas(tooltip, {
    source: (p) => write("selected_position", p),
    cell: (k, p) => {
      if (model.get("heatmap") === "rows") goRow(k);
      else goStep(k);
      if (p >= 0) write("selected_position", p);
    },
  });
  const box = h("div", "aw-tl-box");
  box.appendChild(canvas.canvas);
  canvas.stickTo(box);
  root.append(toolbar.element, choices, errorBanner, warnBanner, scrub, info, hint, text, legend, box, tooltip);
  el.appendChild(root);

  const width = () => Math.max(120, (root.clientWidth || 640) - 14);
  let lastWidth = 0;
  const unwatch = watchWidth(root, () => {
    if (Math.abs(width() - lastWidth) >= 1) redraw();
  });

  function draw() {
    lastWidth = width();
    const tokens = model.get("tokens") || [];
    const t = tokens.length;
    const nSteps = model.get("n_denoising_steps") || 0;
    const steps = rowStep();
    const targets = model.get("target_positions") || [];
    const nRows = targets.length;
    const kind = model.get("score_kind");
    const mode: SignMode = kind === "signed" ? "signed" : "absolute";
    const masked = decodeTensor(model.get("masked"));
    const values = decodeTensor(model.get(kind === "signed" ? "signed_scores" : "scores"));
    const compl = decodeTensor(model.get("completeness_error"));
    for (const [name, tensor, size] of [["masked", masked, (nSteps + 1) * t], ["scores", values, nRows * t],
      ["completeness_error", compl, nRows]] as const) {
      if (tensor && tensor.data.length !== size) throw new Error(`${name} shape [${tensor.shape}] does not match ${nRows} rows, ${nSteps} steps, ${t} tokens`);
    }
    const inRange = (v: number, m: number) => (Number.isInteger(v) && v >= 0 && v < m ? v : -1);
    const sel = inRange(model.get("selected_target"), nRows);
    const step = inRange(model.get("selected_step"), nSteps);
    const source = inRange(model.get("selected_position"), t);
    const j = sel >= 0 ? targets[sel] : -1;
    const selStep = sel >= 0 ? steps[sel] : -1;
    const rowValues = sel >= 0 && values ? row(values, sel) : null;
    const after = step >= 0 ? step + 1 : nSteps; // the state shown: after the step (its new tokens revealed)
    const stepRows = step >= 0 ? rowsAt(steps, step) : [];
    const newAt = new Set(stepRows.map((r) => targets[r]));
    const rowOf = new Map<number, number>();
    steps.forEach((s, r) => {
      if (s < after) rowOf.set(targets[r], r);
    });
    const byStep = Array.from({ length: nSteps }, (_, s) => new Set(rowsAt(steps, s).map((r) => targets[r])));
    const perStep = model.get("heatmap") !== "rows";
    const cells = !values ? null : perStep ? stepHeatmap(values, steps, nSteps) : values.data;
    const hmRows = perStep ? nSteps : nRows;
    const err = sel >= 0 && compl ? compl.data[sel] : NaN;
    const flag = model.get("flag_error");
    const flaggedRows = compl ? Array.from(compl.data).filter((e) => e > flag).length : 0;
    const layer = model.get("layer") || "";
    const shown = model.get("shown_layer") || "";
    let stillMasked = 0;
    for (let p = 0; p < t; p++) if (isMasked(masked, after, p)) stillMasked += 1;
    Object.assign(root.dataset, {
      selectedStep: String(step), selectedTarget: String(sel), targetPosition: String(j), selectedSource: String(source),
      checksum: rowValues ? checksumFloat32(rowValues) : "", heatmapChecksum: cells ? checksumFloat32(cells) : "",
      newPositions: Array.from(newAt).join(","), maskedCount: String(stillMasked), flagged: String(err > flag),
      flaggedRows: String(flaggedRows), layer, shownLayer: shown, nSteps: String(nSteps), nRows: String(nRows),
      canCompute: String(Boolean(model.get("can_compute"))), scoreKind: kind, heatmap: perStep ? "steps" : "rows",
    });

    const tokLabel = (p: number) => (tokens[p] ? showWhitespace(displayText(tokens[p])) : "?");
    const live = Boolean(model.get("can_compute"));
    if (document.activeElement !== layerInput) layerInput.value = layer;
    layerInput.disabled = !live;
    layerInput.title = live ? "layer to explain at: press Enter to recompute" : "static view: pass model=... to recompute";
    const names = Array.from(new Set([...(model.get("layer_choices") || []), ...(shown ? [shown] : [])]));
    if (choices.dataset.names !== JSON.stringify(names)) {
      choices.replaceChildren(...names.map((n) => Object.assign(h("option"), { value: n })));
      choices.dataset.names = JSON.stringify(names);
    }
    kindSel.value = kind;
    hmSel.value = perStep ? "steps" : "rows";
    normSel.value = model.get("normalization");
    toolbar.setModelId(model.get("llm_id") || "");
    slider.max = String(Math.max(0, nSteps - 1));
    slider.value = String(Math.max(0, step));
    slider.disabled = prev.disabled = next.disabled = nSteps === 0;
    prev.disabled ||= step <= 0;
    next.disabled ||= step >= nSteps - 1;
    stepOut.textContent = step >= 0 ? `step ${step} of ${nSteps}` : `final (${nSteps} steps)`;

    const warnings: string[] = [];
    if (t === 0) warnings.push(model.get("busy") ? "computing the first run\u2026" : "nothing to show yet.");
    if (layer && shown && layer !== shown) {
      warnings.push(model.get("busy") ? `computing layer ${JSON.stringify(layer)}\u2026 (showing ${JSON.stringify(shown)})`
        : `showing layer ${JSON.stringify(shown)}, not ${JSON.stringify(layer)}.`);
    }
    if (err > flag) {
      warnings.push(`completeness error ${(100 * err).toPrecision(2)}% above ${100 * flag}% for #${j} ` +
        `${JSON.stringify(tokLabel(j))}: raise n_steps.`);
    } else if (flaggedRows) warnings.push(`${flaggedRows} of ${nRows} tokens have a completeness error above ${100 * flag}%.`);
    warnBanner.textContent = warnings.join("\n");

    const parts: string[] = [];
    if (step >= 0) parts.push(`step ${step} unmasks ${stepRows.map((r) => JSON.stringify(tokLabel(targets[r]))).join(", ") || "nothing"}`);
    if (j >= 0) parts.push(`target #${j} ${JSON.stringify(tokLabel(j))}`);
    if (source >= 0 && rowValues) parts.push(`source #${source} ${JSON.stringify(tokLabel(source))} ${formatValue(rowValues[source])}`);
    infoText.textContent = parts.join(" \u00b7 ");
    badge.textContent = sel < 0 ? "" : Number.isNaN(err) ? "completeness n/a" : `completeness error ${(100 * err).toPrecision(2)}%${err > flag ? " \u26a0" : ""}`;
    badge.classList.toggle("aw-bad", err > flag);
    badge.classList.toggle("aw-hidden", sel < 0);
    legendText.textContent = `${kind === "signed" ? "signed sum" : "L2 norm"} of layer IG at ${shown || "?"}` +
      ` \u00b7 heatmap ${perStep ? "summed per step" : "per token"}, scaled ${model.get("normalization") === "global" ? "globally" : "per row"}` +
      " \u00b7 dot: a mask at that step";
    legendBar.style.background = legendGradient(mode);

    const scale = rowValues ? rowScales(rowValues, 1, t, false)[0] : 0;
    const describeValue = (p: number) => (rowValues ? `\n${formatValue(rowValues[p])} to #${j} ${JSON.stringify(tokLabel(j))}` : "");
    renderStepText(text, {
      tokens, nPrompt: model.get("n_prompt"), maskText: model.get("mask_text") || "[MASK]",
      maskedOut: (p) => isMasked(masked, after, p), rowOf, newAtStep: newAt,
      values: selStep === step ? rowValues : null, scale, mode, targetPosition: j, selectedSource: source,
      describe: (p) => {
        const r = rowOf.get(p);
        const what = isMasked(masked, after, p) ? "still masked" : r === undefined ? "prompt"
          : newAt.has(p) ? `unmasked at this step (row ${r})` : `unmasked at step ${steps[r]} (row ${r})`;
        return `#${p} ${JSON.stringify(tokLabel(p))} \u00b7 ${what}${selStep === step ? describeValue(p) : ""}`;
      },
      onRow: goRow, onSource: (p) => write("selected_position", p),
    }, tooltip);

    canvas.draw({
      t, nPrompt: model.get("n_prompt"), bars: rowValues, mode, target: j, source,
      barMasked: (p) => isMasked(masked, selStep, p),
      cells, nRows: hmRows, scales: cells ? rowScales(cells, hmRows, t, model.get("normalization") === "global") : new Float64Array(hmRows),
      rowLabel: (k) => (perStep ? `s${k}` : `#${targets[k]}`),
      cellMasked: (k, p) => isMasked(masked, perStep ? k : steps[k], p),
      cellNew: (k, p) => (perStep ? byStep[k].has(p) : targets[k] === p),
      selectedRow: perStep ? step : sel,
      describeBar: (p) => `#${p} ${JSON.stringify(tokLabel(p))}${isMasked(masked, selStep, p) ? " (a mask at that step)" : ""}` +
        `${describeValue(p)}\nclick to pick it as the source`,
      describeCell: (k, p) => {
        const v = cells ? cells[k * t + p] : NaN;
        const head = perStep ? `step ${k} (${byStep[k].size} token${byStep[k].size === 1 ? "" : "s"} summed)`
          : `#${targets[k]} ${JSON.stringify(tokLabel(targets[k]))} at step ${steps[k]}`;
        const m = isMasked(masked, perStep ? k : steps[k], p) ? " (a mask then)" : "";
        return `${head}\n\u2190 #${p} ${JSON.stringify(tokLabel(p))}${m}: ${Number.isNaN(v) ? "nothing unmasked" : formatValue(v)}`;
      },
    }, lastWidth);
  }

  return listen(model, REDRAW_TRAITS, status, () => save.cancel(), unwatch, () => toolbar.dispose());
}

export default { render };
