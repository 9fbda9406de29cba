// TokenMatrix view: running text tinted by attribution to the selected target, a targets x sources heatmap,
// legend, controls. Python side: attrwidgets/widgets/token_matrix.py (same trait names, see types.ts).
import type { Model, RenderProps, TokenRecord } from "./types";
import { checksumFloat32 } from "./lib/checksum";
import { formatValue, legendGradient, normalise, rowScales } from "./lib/colour";
import { debounce, h, onCommit, showWhitespace } from "./lib/dom";
import { renderHeatmap, type RowStat } from "./lib/heatmap";
import { labeled, responsiveToolbar, watchWidth } from "./lib/layout";
import { decodeTensor, decodeVector, row, type Tensor } from "./lib/tensor";
import { busyIndicator, listen, viewStatus } from "./lib/status";
import { injectStyle } from "./lib/theme";
import { displayText, renderTokenText } from "./lib/token_text";

const COMPLETENESS_WARN = 0.05; // docs/methods/lig.md: LIG authors warn at 2%; the view flags clear failures
const SAVE_DEBOUNCE_MS = 150;
const REDRAW_TRAITS = [
  "tokens", "target_positions", "scores", "target_prob", "target_entropy", "completeness_error",
  "selected_target", "method", "methods", "n_steps", "normalization", "sign_mode", "hide_special", "llm_id",
] as const;

function selectOf(options: string[], value: string, onChange: (v: string) => void): HTMLSelectElement {
  const sel = h("select");
  fillSelect(sel, options, value);
  sel.addEventListener("change", () => onChange(sel.value));
  return sel;
}

function fillSelect(sel: HTMLSelectElement, options: string[], value: string): void {
  const all = options.includes(value) || !value ? options : [value, ...options];
  sel.replaceChildren(...all.map((o) => h("option", "", o)));
  sel.value = value;
}

const pct = (x: number) => `${(100 * x).toFixed(x < 0.01 ? 2 : 1)}%`;

function render({ model, el }: RenderProps<Model>) {
  const root = h("div", "aw-root aw-token-matrix");
  if (el.closest(".aw-standalone-host")) root.classList.add("aw-standalone");
  injectStyle(root);
  const save = debounce(() => model.save_changes(), SAVE_DEBOUNCE_MS);
  // Local set first so the view answers at once; the kernel hears the last value after the debounce.
  function write<K extends keyof Model>(key: K, value: Model[K]): void {
    if (model.get(key) === value) return;
    model.set(key, value);
    save();
  }

  // Toolbar: one row at any width (narrow: the secondary controls move into a menu, see lib/layout.ts).
  const methodSel = selectOf([], "", (v) => write("method", v));
  const steps = h("input");
  steps.type = "number";
  steps.min = "1";
  onCommit(steps, () => {
    const n = Math.round(Number(steps.value));
    if (Number.isFinite(n) && n >= 1) write("n_steps", n);
  });
  const stepsLabel = labeled("steps", steps);
  const normSel = selectOf(["row", "global"], "row", (v) => write("normalization", v as Model["normalization"]));
  const signSel = selectOf(["signed", "absolute"], "signed", (v) => write("sign_mode", v as Model["sign_mode"]));
  const hide = h("input");
  hide.type = "checkbox";
  hide.addEventListener("change", () => write("hide_special", hide.checked));
  const busy = busyIndicator();
  const toolbar = responsiveToolbar(root, {
    primary: [labeled("method", methodSel)],
    secondary: [stepsLabel, labeled("normalise", normSel), labeled("sign", signSel), labeled("hide special tokens", hide)],
    status: [busy],
  });

  const tooltip = h("div", "aw-tooltip");
  const status = viewStatus(root, model, () => draw(), tooltip);
  const { errorBanner, warnBanner } = status;
  const info = h("div", "aw-info");
  const text = h("div", "aw-text");
  const legend = h("div", "aw-legend");
  const legendBar = h("span", "aw-legend-bar");
  const legendLo = h("span");
  const legendHi = h("span");
  legend.append(h("span", "", "colour:"), legendLo, legendBar, legendHi);
  const hmScroll = h("div", "aw-hm-scroll");
  root.append(toolbar.element, errorBanner, warnBanner, info, text, legend, hmScroll, tooltip);
  el.appendChild(root);
  const unwatch = watchWidth(root);

  function draw() {
    const tokens: TokenRecord[] = model.get("tokens") || [];
    const targets: number[] = model.get("target_positions") || [];
    const scores: Tensor | null = decodeTensor(model.get("scores"));
    const prob = decodeVector(model.get("target_prob"));
    const entropy = decodeVector(model.get("target_entropy"));
    const compl = decodeVector(model.get("completeness_error"));
    const method = model.get("method") || "";
    const signMode = model.get("sign_mode") === "absolute" ? "absolute" : "signed";
    const norm = model.get("normalization") === "global" ? "global" : "row";
    const hideSpecial = Boolean(model.get("hide_special"));
    let sel = model.get("selected_target");
    if (!(Number.isInteger(sel) && sel >= 0 && sel < targets.length)) sel = -1;
    root.dataset.selectedTarget = String(sel);
    root.dataset.method = method;

    fillSelect(methodSel, model.get("methods") || [], method);
    steps.value = String(model.get("n_steps") ?? "");
    stepsLabel.classList.toggle("aw-hidden", method !== "integrated_gradients");
    normSel.value = norm;
    signSel.value = signMode;
    hide.checked = hideSpecial;
    toolbar.setModelId(model.get("llm_id") || "");

    if (scores && (scores.shape[0] !== targets.length || scores.shape[1] !== tokens.length)) {
      throw new Error(`scores shape [${scores.shape}] does not match ${targets.length} targets x ${tokens.length} tokens`);
    }
    const selRow = scores && sel >= 0 ? row(scores, sel) : null;
    root.dataset.checksum = selRow ? checksumFloat32(selRow) : "";

    const visible = (p: number) => !(hideSpecial && tokens[p]?.special);
    const cols = tokens.map((_, p) => p).filter(visible);
    const rows = targets.map((_, i) => i).filter((i) => visible(targets[i]));
    const scales = scores ? rowScales(scores, rows, cols, norm) : new Float64Array(targets.length);
    const selScale = sel >= 0 ? scales[sel] : 0;
    const targetOf = new Map<number, number>(targets.map((p, i) => [p, i]));
    const tokLabel = (p: number) => (tokens[p] ? showWhitespace(displayText(tokens[p])) : "?");
    const onSelect = (r: number) => write("selected_target", r);

    // Warnings: completeness error (IG), rows not computed yet.
    const warnings: string[] = [];
    let worst = -1;
    if (compl) compl.forEach((v, i) => { if (Number.isFinite(v) && (worst < 0 || v > compl[worst])) worst = i; });
    if (compl && worst >= 0 && compl[worst] > COMPLETENESS_WARN) {
      warnings.push(
        `\u26a0 completeness error ${pct(compl[worst])} for target #${worst} ${JSON.stringify(tokLabel(targets[worst]))} ` +
          `is above ${pct(COMPLETENESS_WARN)}: the scores do not add up to f(x) \u2212 f(baseline); increase n_steps.`,
      );
    }
    root.dataset.completenessWarning = String(warnings.length > 0);
    if (selRow && selRow.every((v) => Number.isNaN(v))) {
      warnings.push(model.get("busy") ? "this target is being computed\u2026" : "this target has not been computed.");
    }
    warnBanner.textContent = warnings.join("\n");

    // Info line for the selected target.
    if (sel >= 0) {
      const parts = [`target #${sel} ${JSON.stringify(tokLabel(targets[sel]))} at position ${targets[sel]}`];
      if (prob && Number.isFinite(prob[sel])) parts.push(`p=${prob[sel].toFixed(3)}`);
      if (entropy && Number.isFinite(entropy[sel])) parts.push(`entropy=${entropy[sel].toFixed(2)} nats`);
      if (compl && Number.isFinite(compl[sel])) parts.push(`completeness error ${pct(compl[sel])}`);
      info.textContent = parts.join(" \u00b7 ");
    } else {
      info.textContent = targets.length ? "no target selected" : "no targets";
    }

    const describe = (r: number, p: number) => {
      const v = scores ? scores.data[r * tokens.length + p] : NaN;
      const n = normalise(v, scales[r], signMode);
      return (
        `source #${p} ${JSON.stringify(tokLabel(p))}\n` +
        `target #${r} ${JSON.stringify(tokLabel(targets[r]))}\n` +
        `score ${formatValue(v)}` + (Number.isFinite(n) ? `  (${n.toFixed(2)} of ${norm} max)` : "")
      );
    };

    renderTokenText(text, {
      tokens, targetOf, values: selRow, scale: selScale, mode: signMode,
      selectedPosition: sel >= 0 ? targets[sel] : -1, hideSpecial, onSelect, markWhitespace: true,
      describe: (p) => (sel >= 0 ? describe(sel, p) : `source #${p} ${JSON.stringify(tokLabel(p))}`),
    }, tooltip);

    legendBar.style.background = legendGradient(signMode);
    const shown = norm === "row" ? selScale : scales[0] ?? 0;
    legendLo.textContent = signMode === "absolute" ? "0" : formatValue(-shown);
    legendHi.textContent = formatValue(shown) + (norm === "row" ? " (selected row max)" : " (global max)");

    if (!scores || targets.length === 0) {
      hmScroll.replaceChildren(h("div", "aw-notice", tokens.length ? "no scores yet" : "no data"));
      return;
    }
    const statHeaders: [string, string][] = [
      ["p", "probability of the target token"], ["H", "entropy of the next-token distribution (nats)"],
    ];
    if (compl) statHeaders.push(["IG err", "IG completeness error |sum IG - (f(x) - f(x'))| / |f(x) - f(x')|"]);
    renderHeatmap(hmScroll, {
      scores, rows, cols, scales, mode: signMode, selected: sel, statHeaders, describe, onSelect,
      rowLabel: (r) => `${r}: ${tokLabel(targets[r])}`,
      colLabel: tokLabel,
      rowStats: (r) => {
        const s: RowStat[] = [
          { text: prob ? formatProb(prob[r]) : "\u2013", title: "probability of the target token" },
          { text: entropy ? formatNum(entropy[r]) : "\u2013", title: "entropy of the next-token distribution (nats)" },
        ];
        if (compl) {
          const v = compl[r];
          s.push({
            text: Number.isFinite(v) ? pct(v) : "\u2013", bad: v > COMPLETENESS_WARN,
            title: "IG completeness error |sum IG - (f(x) - f(x'))| / |f(x) - f(x')|",
          });
        }
        return s;
      },
    }, tooltip);
  }

  const formatProb = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : "\u2013");
  const formatNum = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : "\u2013");

  return listen(model, REDRAW_TRAITS, status, () => save.cancel(), unwatch, () => toolbar.dispose());
}

export default { render };
