// The prompt and the generation as running text, each token tinted by its score for the selected target.
import type { TokenRecord } from "../types";
import { colourFor, normalise, type SignMode } from "./colour";
import { clickable, h, showWhitespace } from "./dom";
import { hideTooltip, showTooltip } from "./tooltip";

export interface TextSpec {
  tokens: TokenRecord[];
  targetOf: Map<number, number>; // position -> target row, for targets only
  values: Float32Array | null; // the selected row (n_positions,), or null when there is none
  scale: number;
  mode: SignMode;
  selectedPosition: number; // position of the selected target token, -1 if none
  hideSpecial: boolean;
  describe: (position: number) => string;
  onSelect: (row: number) => void;
  // Optional (HeadGrid): clicking a non-target token, or shift-clicking any token, picks it as the source.
  onSource?: (position: number) => void;
  selectedSource?: number;
  // Draw whitespace-only tokens as visible glyphs (then a real line break), so they can be clicked.
  markWhitespace?: boolean;
}

const WHITESPACE = /^\s*$/;

/** Text shown for a token in running text: the decoded form, or the raw piece for specials. */
export function displayText(t: TokenRecord): string {
  if (t.special) return t.text || t.clean;
  return t.clean !== "" ? t.clean : t.text;
}

/** A token's label in the views' info lines and tooltips: whitespace made visible; "?" past the end. */
export function tokenLabel(tokens: TokenRecord[]): (position: number) => string {
  return (p) => (tokens[p] ? showWhitespace(displayText(tokens[p])) : "?");
}

export function renderTokenText(container: HTMLElement, spec: TextSpec, tooltip: HTMLElement): void {
  container.replaceChildren();
  let block: HTMLElement | null = null;
  let body: HTMLElement | null = null;
  let current = "";
  spec.tokens.forEach((tok, pos) => {
    if (block === null || tok.segment !== current) {
      current = tok.segment;
      block = h("div", `aw-segment aw-seg-${/^[a-z]+$/.test(current) ? current : "other"}`);
      block.dataset.segment = current;
      block.appendChild(h("span", "aw-segment-label", current));
      body = h("span", "aw-tokens");
      block.appendChild(body);
      container.appendChild(block);
    }
    const shown = displayText(tok);
    const blank = Boolean(spec.markWhitespace) && WHITESPACE.test(shown);
    const span = h("span", blank ? "aw-tok aw-ws" : "aw-tok", blank ? showWhitespace(shown) : shown);
    span.dataset.position = String(pos);
    if (tok.special) span.classList.add("aw-special");
    if (tok.special && spec.hideSpecial) span.classList.add("aw-hidden");
    if (spec.values && pos < spec.values.length) {
      const v = spec.values[pos];
      span.style.backgroundColor = colourFor(normalise(v, spec.scale, spec.mode), spec.mode);
    }
    if (spec.selectedPosition >= 0 && pos > spec.selectedPosition) span.classList.add("aw-future");
    const row = spec.targetOf.get(pos);
    const onSource = spec.onSource;
    if (row !== undefined) {
      span.classList.add("aw-target");
      span.dataset.target = String(row);
      if (pos === spec.selectedPosition) span.classList.add("aw-selected");
      clickable(span, (e) => (onSource && e.shiftKey ? onSource(pos) : spec.onSelect(row)));
    } else if (onSource) {
      span.classList.add("aw-pickable");
      clickable(span, () => onSource(pos));
    }
    if (pos === spec.selectedSource) span.classList.add("aw-source");
    span.addEventListener("mousemove", (e) => showTooltip(tooltip, spec.describe(pos), e));
    span.addEventListener("mouseleave", () => hideTooltip(tooltip));
    (body as HTMLElement).appendChild(span);
    if (blank && shown.includes("\n")) (body as HTMLElement).appendChild(document.createTextNode("\n"));
  });
  // A block whose tokens are all hidden specials would show an empty labelled bar.
  for (const b of Array.from(container.children) as HTMLElement[]) {
    const toks = Array.from(b.querySelectorAll(".aw-tok"));
    if (toks.length > 0 && toks.every((t) => t.classList.contains("aw-hidden"))) b.classList.add("aw-hidden");
  }
}
