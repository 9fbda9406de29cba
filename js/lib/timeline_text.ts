// The sequence at one denoising step as running text: masked positions as the mask text, the tokens this step
// unmasks highlighted, every token tinted by the selected row's attribution. Text via textContent only.
import type { TokenRecord } from "../types";
import { colourFor, normalise, type SignMode } from "./colour";
import { clickable, h, showWhitespace } from "./dom";
import { displayText } from "./token_text";
import { hideTooltip, showTooltip } from "./tooltip";

export interface StepTextSpec {
  tokens: TokenRecord[];
  nPrompt: number;
  maskText: string;
  maskedOut: (p: number) => boolean; // still masked after the shown step
  rowOf: Map<number, number>; // position -> the row that unmasked it, for rows unmasked up to the shown step
  newAtStep: Set<number>; // positions the shown step unmasks
  values: Float32Array | null; // the selected row's scores (T,), when it belongs to the shown step
  scale: number;
  mode: SignMode;
  targetPosition: number;
  selectedSource: number;
  describe: (p: number) => string;
  onRow: (row: number) => void;
  onSource: (p: number) => void;
}

const WHITESPACE = /^\s*$/;

export function renderStepText(container: HTMLElement, spec: StepTextSpec, tooltip: HTMLElement): void {
  container.replaceChildren();
  const segments: [string, number, number][] = [["prompt", 0, spec.nPrompt], ["generated", spec.nPrompt, spec.tokens.length]];
  for (const [name, start, end] of segments) {
    if (end <= start) continue;
    const block = h("div", `aw-segment aw-seg-${name}`);
    block.dataset.segment = name;
    block.appendChild(h("span", "aw-segment-label", name));
    const body = h("span", "aw-tokens");
    block.appendChild(body);
    for (let p = start; p < end; p++) {
      const span = tokenSpan(spec, p, tooltip);
      body.appendChild(span);
      if (span.classList.contains("aw-ws") && displayText(spec.tokens[p]).includes("\n")) {
        body.appendChild(document.createTextNode("\n"));
      }
    }
    container.appendChild(block);
  }
}

function tokenSpan(spec: StepTextSpec, p: number, tooltip: HTMLElement): HTMLElement {
  const tok = spec.tokens[p];
  const masked = spec.maskedOut(p);
  const shown = masked ? spec.maskText : displayText(tok);
  const blank = !masked && WHITESPACE.test(shown);
  const span = h("span", "aw-tok", blank ? showWhitespace(shown) : shown);
  span.dataset.position = String(p);
  if (blank) span.classList.add("aw-ws");
  if (masked) span.classList.add("aw-mask");
  else if (tok.special) span.classList.add("aw-special");
  if (spec.newAtStep.has(p)) span.classList.add("aw-new");
  if (spec.values && p < spec.values.length) {
    span.style.backgroundColor = colourFor(normalise(spec.values[p], spec.scale, spec.mode), spec.mode);
  }
  const row = masked ? undefined : spec.rowOf.get(p);
  if (row !== undefined) {
    span.classList.add("aw-target");
    span.dataset.row = String(row);
    clickable(span, (e) => (e.shiftKey ? spec.onSource(p) : spec.onRow(row)));
  } else {
    span.classList.add("aw-pickable");
    clickable(span, () => spec.onSource(p));
  }
  if (p === spec.targetPosition) span.classList.add("aw-selected");
  if (p === spec.selectedSource) span.classList.add("aw-source");
  span.addEventListener("mousemove", (e) => showTooltip(tooltip, spec.describe(p), e));
  span.addEventListener("mouseleave", () => hideTooltip(tooltip));
  return span;
}
