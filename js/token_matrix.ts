// TokenMatrix view: running text tinted by attribution to the selected target, a targets x sources heatmap,
// legend, controls. Python side: attrwidgets/widgets/token_matrix.py (same trait names, see types.ts).
import type { Model, RenderProps, TokenRecord } from "./types";
import { checksumFloat32 } from "./lib/checksum";
import { formatValue, legendGradient, normalise, rowScales, type SignMode } from "./lib/colour";
import { h, onCommit } from "./lib/dom";
import { renderHeatmap, type RowStat } from "./lib/heatmap";
import { labeled } from "./lib/layout";
import { decodeTensor, decodeVector, row, type Tensor } from "./lib/tensor";
import { renderTokenText, tokenLabel } from "./lib/token_text";
import { createView, inRange, notComputed, type View } from "./lib/view_base";

const COMPLETENESS_WARN = 0.05; // when the model has no completeness_tolerance (widgets/token_matrix.py)
const REDRAW_TRAITS = [
  "tokens", "target_positions", "scores", "target_prob", "target_entropy", "completeness_error",
  "selected_target", "method", "methods", "n_steps", "normalization", "sign_mode", "hide_special", "llm_id",
  "head_split", "head_split_of", "head_split_contribution", "refining", "completeness_tolerance",
] as const;
const P_TITLE = "probability of the target token";
const H_TITLE = "entropy of the next-token distribution (nats)";
const IG_TITLE = "IG completeness error |sum IG - (f(x) - f(x'))| / |f(x) - f(x')|";

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
const formatProb = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : "\u2013");
const formatNum = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : "\u2013");

/** The toolbar: one row at any width (narrow: the secondary controls move into a menu, see lib/layout.ts). */
function controls({ write, toolbar }: View<Model>) {
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
  const bar = toolbar({
    primary: [labeled("method", methodSel)],
    secondary: [stepsLabel, labeled("normalise", normSel), labeled("sign", signSel), labeled("hide special tokens", hide)],
  });
  return { bar, methodSel, steps, stepsLabel, normSel, signSel, hide };
}

interface Parts extends ReturnType<typeof controls> {
  view: View<Model>;
  info: HTMLDivElement;
  text: HTMLDivElement;
  legendBar: HTMLSpanElement;
  legendLo: HTMLSpanElement;
  legendHi: HTMLSpanElement;
  hmScroll: HTMLDivElement;
  headLine: HTMLDivElement;
}

function render({ model, el, brush }: RenderProps<Model>) {
  const view = createView(model, el, { className: "aw-token-matrix", brush });
  const info = h("div", "aw-info");
  const text = h("div", "aw-text");
  const legend = h("div", "aw-legend");
  const legendBar = h("span", "aw-legend-bar");
  const legendLo = h("span");
  const legendHi = h("span");
  legend.append(h("span", "", "colour:"), legendLo, legendBar, legendHi);
  const hmScroll = h("div", "aw-hm-scroll");
  const headLine = h("div", "aw-info aw-head-split");
  const parts: Parts = { ...controls(view), view, info, text, legendBar, legendLo, legendHi, hmScroll, headLine };
  return view.start({
    top: [parts.bar.element], body: [headLine, info, text, legend, hmScroll], traits: REDRAW_TRAITS,
    draw: () => draw(parts),
  });
}

/** What one draw works from: the model's traits, decoded, the selection in range. */
function frame(model: View<Model>["model"]) {
  const tokens: TokenRecord[] = model.get("tokens") || [];
  const targets: number[] = model.get("target_positions") || [];
  // A head selected in a linked grid: its split by source stands in for the method's scores.
  const splitOf: number[] = model.get("head_split_of") || [];
  const split: Tensor | null = splitOf.length === 2 ? decodeTensor(model.get("head_split")) : null;
  const scores: Tensor | null = split ?? decodeTensor(model.get("scores"));
  return {
    tokens, targets, scores,
    headView: split ? { layer: splitOf[0], head: splitOf[1], sums: decodeVector(model.get("head_split_contribution")) } : null,
    prob: decodeVector(model.get("target_prob")),
    entropy: decodeVector(model.get("target_entropy")),
    compl: split ? null : decodeVector(model.get("completeness_error")),
    // Rows showing an intermediate answer (IG refining): row -> gradient evaluations so far.
    refining: new Map<number, number>(split ? [] : (model.get("refining") || []).map(([r, n]) => [r, n])),
    tolerance: Number(model.get("completeness_tolerance") ?? COMPLETENESS_WARN),
    method: model.get("method") || "",
    signMode: (model.get("sign_mode") === "absolute" ? "absolute" : "signed") as SignMode,
    norm: model.get("normalization") === "global" ? "global" as const : "row" as const,
    hideSpecial: Boolean(model.get("hide_special")),
    sel: inRange(model.get("selected_target"), targets.length),
    tokLabel: tokenLabel(tokens),
  };
}
type Frame = ReturnType<typeof frame>;

function draw(p: Parts): void {
  const { model, root, tooltip, write } = p.view;
  const f = frame(model);
  const { tokens, targets, scores, prob, entropy, compl, method, signMode, norm, hideSpecial, sel, tokLabel } = f;
  root.dataset.selectedTarget = String(sel);
  root.dataset.method = method;
  root.dataset.headSplit = f.headView ? `${f.headView.layer},${f.headView.head}` : "";
  root.dataset.refining = [...f.refining.keys()].join(",");
  drawHeadLine(p, f, write);

  fillSelect(p.methodSel, model.get("methods") || [], method);
  p.steps.value = String(model.get("n_steps") ?? "");
  p.stepsLabel.classList.toggle("aw-hidden", method !== "integrated_gradients");
  p.normSel.value = norm;
  p.signSel.value = signMode;
  p.hide.checked = hideSpecial;
  p.bar.setModelId(model.get("llm_id") || "");

  if (scores && (scores.shape[0] !== targets.length || scores.shape[1] !== tokens.length)) {
    throw new Error(`scores shape [${scores.shape}] does not match ${targets.length} targets x ${tokens.length} tokens`);
  }
  const selRow = scores && sel >= 0 ? row(scores, sel) : null;
  root.dataset.checksum = selRow ? checksumFloat32(selRow) : "";

  const visible = (q: number) => !(hideSpecial && tokens[q]?.special);
  const cols = tokens.map((_, q) => q).filter(visible);
  const rows = targets.map((_, i) => i).filter((i) => visible(targets[i]));
  const scales = scores ? rowScales(scores, rows, cols, norm) : new Float64Array(targets.length);
  const selScale = sel >= 0 ? scales[sel] : 0;
  const targetOf = new Map<number, number>(targets.map((q, i) => [q, i]));
  const onSelect = (r: number) => write("selected_target", r);

  p.view.status.warnBanner.textContent = warnings(p, f, selRow).join("\n");
  p.info.textContent = infoLine(f);

  const describe = (r: number, q: number) => {
    const v = scores ? scores.data[r * tokens.length + q] : NaN;
    const n = normalise(v, scales[r], signMode);
    return (
      `source #${q} ${JSON.stringify(tokLabel(q))}\n` +
      `target #${r} ${JSON.stringify(tokLabel(targets[r]))}\n` +
      `score ${formatValue(v)}` + (Number.isFinite(n) ? `  (${n.toFixed(2)} of ${norm} max)` : "")
    );
  };

  renderTokenText(p.text, {
    tokens, targetOf, values: selRow, scale: selScale, mode: signMode,
    selectedPosition: sel >= 0 ? targets[sel] : -1, hideSpecial, onSelect, markWhitespace: true,
    describe: (q) => (sel >= 0 ? describe(sel, q) : `source #${q} ${JSON.stringify(tokLabel(q))}`),
  }, tooltip);

  p.legendBar.style.background = legendGradient(signMode);
  const shown = norm === "row" ? selScale : scales[0] ?? 0;
  p.legendLo.textContent = signMode === "absolute" ? "0" : formatValue(-shown);
  p.legendHi.textContent = formatValue(shown) + (norm === "row" ? " (selected row max)" : " (global max)");

  if (!scores || targets.length === 0) {
    p.hmScroll.replaceChildren(h("div", "aw-notice", tokens.length ? "no scores yet" : "no data"));
    return;
  }
  const statHeaders: [string, string][] = [["p", P_TITLE], ["H", H_TITLE]];
  if (compl) statHeaders.push(["IG err", IG_TITLE]);
  renderHeatmap(p.hmScroll, {
    scores, rows, cols, scales, mode: signMode, selected: sel, statHeaders, describe, onSelect, onHover: p.view.hover,
    rowLabel: (r) => `${r}: ${tokLabel(targets[r])}`,
    colLabel: tokLabel,
    rowStats: (r) => {
      const s: RowStat[] = [
        { text: prob ? formatProb(prob[r]) : "\u2013", title: P_TITLE },
        { text: entropy ? formatNum(entropy[r]) : "\u2013", title: H_TITLE },
      ];
      if (compl) {
        const v = compl[r];
        const steps = f.refining.get(r);
        const text = !Number.isFinite(v) ? "\u2013" : steps === undefined ? pct(v) : `${pct(v)}\u2026`;
        const title = steps === undefined ? IG_TITLE : `${IG_TITLE}\nrefining: ${steps} gradient evaluations so far`;
        s.push({ text, bad: steps === undefined && v > f.tolerance, title });
      }
      return s;
    },
  }, tooltip);
}

/** With a head's split shown: which head, what a row sums to, and the way back to the method's scores. */
function drawHeadLine(p: Parts, { headView, sel, method }: Frame, write: View<Model>["write"]): void {
  p.headLine.classList.toggle("aw-hidden", !headView);
  if (!headView) {
    p.headLine.replaceChildren();
    return;
  }
  const sum = headView.sums && sel >= 0 ? headView.sums[sel] : NaN;
  const back = h("button", "", `show ${method || "scores"}`);
  Object.assign(back, { type: "button", title: "clear the head selection (every linked view)" });
  back.addEventListener("click", () => write("selected_head", -1));
  p.headLine.replaceChildren(
    h("b", "", `head L${headView.layer}.H${headView.head}`),
    ` carries this to each target from each source (DePass); the row sums to the head's contribution` +
      (Number.isFinite(sum) ? ` ${formatValue(sum)} ` : " "),
    back,
  );
}

/** The completeness error (IG) of the worst row, and a selected row not computed yet. */
function warnings(p: Parts, { compl, targets, tokLabel, refining, tolerance }: Frame, selRow: Float32Array | null): string[] {
  const out: string[] = [];
  let worst = -1;
  const final = (i: number) => Number.isFinite(compl?.[i] ?? NaN) && !refining.has(i); // refining rows warn below
  if (compl) compl.forEach((v, i) => { if (final(i) && (worst < 0 || v > compl[worst])) worst = i; });
  if (compl && worst >= 0 && compl[worst] > tolerance) {
    out.push(
      `\u26a0 completeness error ${pct(compl[worst])} for target #${worst} ${JSON.stringify(tokLabel(targets[worst]))} ` +
        `is above ${pct(tolerance)}: the scores do not add up to f(x) \u2212 f(baseline); increase n_steps.`,
    );
  }
  p.view.root.dataset.completenessWarning = String(out.length > 0);
  if (selRow && selRow.every((v) => Number.isNaN(v))) {
    const busy = p.view.model.get("busy");
    out.push(busy ? "this target is being computed\u2026" : notComputed(p.view.root, "this target"));
  }
  return out;
}

/** The info line for the selected target. */
function infoLine({ sel, targets, prob, entropy, compl, tokLabel, refining, tolerance }: Frame): string {
  if (sel < 0) return targets.length ? "no target selected" : "no targets";
  const parts = [`target #${sel} ${JSON.stringify(tokLabel(targets[sel]))} at position ${targets[sel]}`];
  if (prob && Number.isFinite(prob[sel])) parts.push(`p=${prob[sel].toFixed(3)}`);
  if (entropy && Number.isFinite(entropy[sel])) parts.push(`entropy=${entropy[sel].toFixed(2)} nats`);
  if (compl && Number.isFinite(compl[sel])) parts.push(`completeness error ${pct(compl[sel])}`);
  const steps = refining.get(sel);
  if (steps !== undefined) {
    parts.push(`refining: ${steps} gradient evaluations so far, until the error is below ${pct(tolerance)}\u2026`);
  }
  return parts.join(" \u00b7 ");
}

export default { render };
