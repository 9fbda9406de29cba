// DiffusionTimeline's own styles, added after theme.ts's shared ones (same variables, same narrow rules).
import { appendStyle, wideToolbarRules } from "./theme";

const CSS = `
${wideToolbarRules("aw-diffusion-timeline", 160)}.aw-tl-layer input { width: 11em; min-width: 4em; }
.aw-tl-scrub { display: flex; align-items: center; gap: 6px; margin: 4px 0; }
.aw-tl-scrub input[type=range] { flex: 1 1 auto; min-width: 60px; max-width: 480px; }
.aw-tl-scrub button { font: inherit; line-height: 1.2; color: var(--aw-fg); background: var(--aw-bg-alt);
  border: 1px solid var(--aw-border); border-radius: 3px; cursor: pointer; padding: 0 8px; flex: none; }
.aw-tl-scrub button:disabled { opacity: 0.4; cursor: default; }
.aw-tl-scrub output { font-family: var(--aw-mono); white-space: nowrap; flex: none; }
.aw-tok.aw-mask { color: var(--aw-fg-dim); font-family: var(--aw-mono); font-size: 0.8em; border: 1px dashed var(--aw-border); }
.aw-tok.aw-new { font-weight: bold; box-shadow: inset 0 -2px 0 #ef6c00; }
.aw-badge.aw-bad { color: var(--aw-err-fg); border-color: var(--aw-err-fg); font-weight: bold; }
.aw-tl-box { overflow: auto; max-height: 520px; border: 1px solid var(--aw-border); border-radius: 3px;
  width: max-content; max-width: 100%; }
.aw-tl-canvas { display: block; cursor: pointer; }
.aw-narrow .aw-tl-box { max-height: 400px; }
.aw-narrow .aw-tl-layer input { width: 7em; }
`;

export function injectTimelineStyle(el: HTMLElement): void {
  appendStyle(el, CSS);
}
