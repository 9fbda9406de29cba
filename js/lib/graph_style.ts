// GraphView's own styles, added after theme.ts's shared ones (same variables, same narrow rules).
import { appendStyle } from "./theme";

const CSS = `
.aw-graph-view .aw-toolbar { gap: 4px 10px; }
.aw-graph-view .aw-toolbar label { white-space: nowrap; }
.aw-graph-view .aw-model-id { max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.aw-graph-view .aw-toolbar button { font: inherit; line-height: 1.2; color: var(--aw-fg); background: var(--aw-bg-alt);
  border: 1px solid var(--aw-border); border-radius: 3px; cursor: pointer; padding: 0 8px; }
.aw-graph-view .aw-toolbar button:disabled { opacity: 0.4; cursor: default; }
.aw-graph-target input { width: 14em; min-width: 5em; font-family: var(--aw-mono); }
.aw-graph-threshold input[type=range] { width: 90px; min-width: 50px; }
.aw-graph-threshold output { font-family: var(--aw-mono); min-width: 3em; }
.aw-graph-view .aw-legend-bar { width: 90px; flex: 0 1 90px; }
.aw-graph-box { border: 1px solid var(--aw-border); border-radius: 3px; overflow: hidden; position: relative; }
.aw-graph-canvas { display: block; cursor: grab; touch-action: none; }
.aw-graph-canvas.aw-dragging { cursor: grabbing; }
.aw-graph-canvas:focus-visible, .aw-graph-canvas:focus { outline: 2px solid var(--aw-accent); outline-offset: -2px; }
.aw-graph-stats { font-family: var(--aw-mono); font-size: 12px; color: var(--aw-fg-dim); overflow-wrap: anywhere; }
.aw-graph-lists { display: flex; flex-wrap: wrap; gap: 4px 16px; margin-top: 4px; }
.aw-graph-edges { flex: 1 1 260px; min-width: 0; }
.aw-graph-edges-title { font-size: 11px; text-transform: uppercase; letter-spacing: 0.05em; color: var(--aw-fg-dim); }
.aw-graph-edge { display: flex; gap: 6px; align-items: center; cursor: pointer; padding: 1px 2px; border-radius: 2px;
  font-size: 12px; white-space: nowrap; }
.aw-graph-edge:hover, .aw-graph-edge:focus { background: var(--aw-bg-alt); outline: none; }
.aw-graph-swatch { width: 10px; height: 10px; border-radius: 2px; flex: none; }
.aw-graph-weight { font-family: var(--aw-mono); width: 7ch; text-align: right; flex: none; }
.aw-graph-name { overflow: hidden; text-overflow: ellipsis; min-width: 0; flex: 1 1 auto; white-space: pre; }
.aw-graph-where { color: var(--aw-fg-dim); font-family: var(--aw-mono); font-size: 11px; flex: none; }
.aw-graph-none { color: var(--aw-fg-dim); font-size: 12px; }
.aw-graph-pin { font: inherit; color: var(--aw-fg); background: var(--aw-bg-alt); border: 1px solid var(--aw-border);
  border-radius: 3px; cursor: pointer; padding: 0 8px; }
.aw-narrow .aw-graph-target input { width: 8em; }
.aw-narrow .aw-graph-threshold output { display: none; }
`;

export function injectGraphStyle(el: HTMLElement): void {
  appendStyle(el, CSS);
}
