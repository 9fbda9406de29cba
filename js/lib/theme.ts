// Styles for every view. JupyterLab's CSS variables carry the light/dark theme; the fallbacks apply in
// Notebook 7 / Colab / the standalone HTML export, and follow prefers-color-scheme there.

// Below layout.NARROW_PX (the root has aw-narrow): a one-row toolbar with a menu, compact heatmap labels.
const NARROW = `
.aw-narrow .aw-toolbar { flex-wrap: nowrap; gap: 6px; }
.aw-narrow .aw-toolbar > label { min-width: 0; flex: 0 1 auto; }
.aw-narrow .aw-toolbar > label > .aw-label-text { display: none; }
.aw-narrow .aw-toolbar select { min-width: 0; max-width: 100%; }
.aw-narrow .aw-busy > span:last-child { display: none; }
.aw-narrow .aw-menu-toggle:not(.aw-no-menu) { display: inline-block; flex: none; font: inherit; line-height: 1.2;
  color: var(--aw-fg); background: var(--aw-bg-alt); border: 1px solid var(--aw-border); border-radius: 3px;
  cursor: pointer; padding: 0 6px; }
.aw-narrow .aw-toolbar-more { display: none; }
.aw-narrow.aw-menu-open .aw-toolbar-more { display: flex; flex-direction: column; align-items: flex-start; gap: 6px;
  position: absolute; top: 100%; left: 0; right: 0; z-index: 20; margin-top: 2px; padding: 6px 8px;
  background: var(--aw-bg); border: 1px solid var(--aw-border); border-radius: 3px; box-shadow: 0 2px 6px rgba(0,0,0,0.25); }
.aw-narrow .aw-model-full { display: block; color: var(--aw-fg-dim); font-family: var(--aw-mono); overflow-wrap: anywhere; }
.aw-narrow .aw-model-id { flex: 1 1 0; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  text-align: right; }
.aw-narrow .aw-hm-stat { display: none; }
.aw-narrow .aw-hm-name { min-width: 2em; max-width: 8em; }
.aw-narrow .aw-hm-scroll, .aw-narrow .aw-hg-box { max-height: 360px; }
`;

const CSS = `
.aw-root {
  --aw-fg: var(--jp-ui-font-color1, #1f1f1f);
  --aw-fg-dim: var(--jp-ui-font-color2, #616161);
  --aw-bg: var(--jp-layout-color1, #ffffff);
  --aw-bg-alt: var(--jp-layout-color2, #eeeeee);
  --aw-border: var(--jp-border-color1, #bdbdbd);
  --aw-accent: var(--jp-brand-color1, #1976d2);
  --aw-warn-bg: var(--jp-warn-color3, #fff3cd);
  --aw-warn-fg: var(--jp-warn-color0, #7a4f01);
  --aw-err-bg: var(--jp-error-color3, #fde7e9);
  --aw-err-fg: var(--jp-error-color0, #a4000f);
  --aw-mono: var(--jp-code-font-family, ui-monospace, SFMono-Regular, Menlo, monospace);
  color: var(--aw-fg);
  background: var(--aw-bg);
  font-family: var(--jp-ui-font-family, system-ui, -apple-system, "Segoe UI", sans-serif);
  font-size: var(--jp-ui-font-size1, 13px);
  line-height: 1.4;
  padding: 6px;
  position: relative;
}
@media (prefers-color-scheme: dark) {
  .aw-root.aw-standalone {
    --aw-fg: #e0e0e0; --aw-fg-dim: #a0a0a0; --aw-bg: #1e1e1e; --aw-bg-alt: #2a2a2a; --aw-border: #555;
    --aw-warn-bg: #4a3b00; --aw-warn-fg: #ffe08a; --aw-err-bg: #4a1418; --aw-err-fg: #ffb3b8;
  }
}
.aw-root * { box-sizing: border-box; }
.aw-toolbar { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; margin-bottom: 6px; position: relative; }
.aw-toolbar-more { display: contents; }
.aw-menu-toggle, .aw-model-full { display: none; }
.aw-toolbar label { display: inline-flex; gap: 4px; align-items: center; color: var(--aw-fg-dim); }
.aw-toolbar select, .aw-toolbar input { color: var(--aw-fg); background: var(--aw-bg-alt);
  border: 1px solid var(--aw-border); border-radius: 3px; font: inherit; padding: 1px 4px; }
.aw-toolbar input[type=number] { width: 5em; }
.aw-model-id { margin-left: auto; color: var(--aw-fg-dim); font-family: var(--aw-mono); }
.aw-busy { display: none; align-items: center; gap: 6px; color: var(--aw-accent); }
.aw-root[data-busy="true"] .aw-busy { display: inline-flex; }
.aw-spinner { width: 12px; height: 12px; border: 2px solid var(--aw-border); border-top-color: var(--aw-accent);
  border-radius: 50%; animation: aw-spin 0.8s linear infinite; }
@keyframes aw-spin { to { transform: rotate(360deg); } }
.aw-banner { padding: 4px 8px; border-radius: 3px; margin: 4px 0; white-space: pre-wrap; }
.aw-banner:empty { display: none; }
.aw-error { background: var(--aw-err-bg); color: var(--aw-err-fg); }
.aw-warning { background: var(--aw-warn-bg); color: var(--aw-warn-fg); }
.aw-notice { color: var(--aw-fg-dim); padding: 8px; }
.aw-text { border: 1px solid var(--aw-border); border-radius: 3px; padding: 4px 6px; margin-bottom: 6px; }
.aw-segment { border-left: 3px solid var(--aw-border); padding: 2px 0 2px 8px; margin: 3px 0; }
.aw-segment-label { font-size: 0.8em; text-transform: uppercase; letter-spacing: 0.05em; color: var(--aw-fg-dim);
  margin-right: 6px; user-select: none; }
.aw-seg-system { border-left-color: #8e8e8e; }
.aw-seg-user { border-left-color: #2e7d32; }
.aw-seg-assistant { border-left-color: #6a1b9a; }
.aw-seg-prompt { border-left-color: #1565c0; }
.aw-seg-generated { border-left-color: #ef6c00; }
.aw-tokens { white-space: pre-wrap; word-break: break-word; }
.aw-tok { border-radius: 2px; padding: 0 1px; }
.aw-tok.aw-target { cursor: pointer; outline: 1px dotted var(--aw-border); }
.aw-tok.aw-selected { outline: 2px solid var(--aw-accent); }
.aw-tok.aw-future { opacity: 0.45; }
.aw-tok.aw-special { font-family: var(--aw-mono); font-size: 0.85em; color: var(--aw-fg-dim);
  border: 1px solid var(--aw-border); }
.aw-hidden { display: none !important; }
.aw-legend { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; margin: 4px 0; color: var(--aw-fg-dim); }
.aw-legend-bar { width: 160px; flex: 0 1 160px; min-width: 40px; height: 10px; border: 1px solid var(--aw-border); }
.aw-hm-scroll { overflow: auto; max-height: 480px; border: 1px solid var(--aw-border); border-radius: 3px; }
.aw-hm { display: grid; align-items: end; width: max-content; position: relative; }
.aw-hm-left { position: sticky; left: 0; background: var(--aw-bg); z-index: 1; display: flex; align-items: end;
  font-family: var(--aw-mono); font-size: 11px; line-height: 16px; padding: 0 6px 0 2px; white-space: pre; }
.aw-hm-rowlabel { cursor: pointer; }
.aw-hm-name { flex: 1; min-width: 4em; max-width: 14em; overflow: hidden; text-overflow: ellipsis; text-align: right; }
.aw-hm-rowlabel.aw-selected .aw-hm-name { color: var(--aw-accent); font-weight: bold; }
.aw-hm-stat { width: 8ch; text-align: right; color: var(--aw-fg-dim); flex: none; }
.aw-hm-stat.aw-bad { color: var(--aw-err-fg); font-weight: bold; }
.aw-hm-cols { display: flex; align-items: flex-end; }
.aw-hm-collabel { writing-mode: vertical-rl; transform: rotate(180deg); font-family: var(--aw-mono); font-size: 11px;
  max-height: 90px; overflow: hidden; white-space: pre; text-overflow: ellipsis; }
.aw-tooltip { position: absolute; pointer-events: none; z-index: 1000; background: var(--aw-bg-alt); color: var(--aw-fg);
  border: 1px solid var(--aw-border); border-radius: 3px; padding: 3px 6px; font-size: 12px; white-space: pre-wrap;
  overflow-wrap: anywhere; max-width: 100%; box-shadow: 0 1px 4px rgba(0,0,0,0.25); }
.aw-tooltip:empty { display: none; }
.aw-info { margin: 4px 0; font-family: var(--aw-mono); font-size: 12px; overflow-wrap: anywhere; }
.aw-hint { color: var(--aw-fg-dim); font-size: 11px; margin: 2px 0 4px; }
.aw-tok.aw-pickable { cursor: pointer; }
.aw-tok.aw-source { outline: 2px dashed var(--aw-accent); }
/* Whitespace tokens as glyphs with a width you can hit (a bare newline is 2 px wide). */
.aw-tok.aw-ws { color: var(--aw-fg-dim); font-family: var(--aw-mono); font-size: 0.85em; display: inline-block;
  min-width: 1.3em; text-align: center; }
.aw-head-grid .aw-toolbar { gap: 4px 10px; }
.aw-head-grid .aw-model-id { max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.aw-head-grid .aw-legend { flex-wrap: wrap; }
.aw-head-grid .aw-text { max-height: 180px; overflow: auto; }
.aw-head-grid .aw-toolbar label { white-space: nowrap; }
.aw-head-grid .aw-legend-bar { width: 120px; flex: 0 1 120px; }
.aw-badge { font-size: 11px; padding: 0 5px; border-radius: 8px; border: 1px solid var(--aw-border);
  color: var(--aw-fg-dim); }
.aw-hg-box, .aw-detail-box { overflow: auto; max-height: 480px; border: 1px solid var(--aw-border); width: max-content;
  border-radius: 3px; max-width: 100%; }
.aw-hg-canvas, .aw-detail-canvas { display: block; }
.aw-hg-canvas:focus-visible, .aw-hg-canvas:focus { outline: 2px solid var(--aw-accent); outline-offset: -2px; }
.aw-detail { margin-top: 6px; border-top: 2px solid var(--aw-accent); padding-top: 4px; }
.aw-detail-head { display: flex; flex-wrap: wrap; gap: 4px 8px; align-items: center; margin-bottom: 4px; }
.aw-detail-title { font-weight: bold; }
.aw-detail-close { margin-left: auto; font: inherit; color: var(--aw-fg); background: var(--aw-bg-alt);
  border: 1px solid var(--aw-border); border-radius: 3px; cursor: pointer; padding: 0 8px; }
${NARROW}`;

/** A <style> holding `css` at the end of `el`: the shared rules first, then each view's own. */
export function appendStyle(el: HTMLElement, css: string): void {
  const style = document.createElement("style");
  style.textContent = css;
  el.appendChild(style);
}

/** The toolbar, model id, text and legend rules of the views with a wide toolbar (LayerFlow, DiffusionTimeline). */
export function wideToolbarRules(viewClass: string, textMaxHeight: number): string {
  return `.${viewClass} .aw-toolbar { gap: 4px 10px; }
.${viewClass} .aw-toolbar label { white-space: nowrap; }
.${viewClass} .aw-model-id { max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.${viewClass} .aw-text { max-height: ${textMaxHeight}px; overflow: auto; }
.${viewClass} .aw-legend-bar { width: 120px; flex: 0 1 120px; }
`;
}

export function injectStyle(el: HTMLElement): void {
  appendStyle(el, CSS);
}
