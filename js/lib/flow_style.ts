// LayerFlow's own styles, added after theme.ts's shared ones (same variables, same narrow rules).
import { appendStyle, wideToolbarRules } from "./theme";

const CSS = `
${wideToolbarRules("aw-layer-flow", 140)}.aw-flow-threshold input[type=range] { width: 90px; min-width: 50px; }
.aw-flow-threshold output { font-family: var(--aw-mono); min-width: 3.5em; }
.aw-flow-box { overflow: auto; max-height: 640px; border: 1px solid var(--aw-border); border-radius: 3px;
  width: max-content; max-width: 100%; }
.aw-flow-canvas { display: block; }
.aw-flow-canvas:focus-visible, .aw-flow-canvas:focus { outline: 2px solid var(--aw-accent); outline-offset: -2px; }
.aw-narrow .aw-flow-box { max-height: 420px; }
.aw-narrow .aw-flow-threshold output { display: none; }
`;

export function injectFlowStyle(el: HTMLElement): void {
  appendStyle(el, CSS);
}
