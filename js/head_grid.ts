// HeadGrid view: the prompt as running text, a layers x heads grid on a canvas coloured by a statistic, and the
// open head's detail (its full pattern and per-source contributions, fetched from the kernel on request).
// Python side: attrwidgets/widgets/head_grid.py (same trait names, see types.ts HeadGridModel).
import type { HeadGridModel, HeadStatistic, RenderProps, TensorDict, TokenRecord } from "./types";
import { checksumFloat32 } from "./lib/checksum";
import { formatValue, legendGradient, type SignMode } from "./lib/colour";
import { debounce, h, showWhitespace } from "./lib/dom";
import { HeadCanvas } from "./lib/head_canvas";
import { labeled, responsiveToolbar, watchWidth } from "./lib/layout";
import { DetailCanvas } from "./lib/head_detail";
import { decodeTensor, decodeVector, type Tensor } from "./lib/tensor";
import { busyIndicator, listen, viewStatus } from "./lib/status";
import { injectStyle } from "./lib/theme";
import { displayText, renderTokenText } from "./lib/token_text";

export { standalone } from "./lib/head_local"; // used by the standalone HTML page only

const SAVE_DEBOUNCE_MS = 150;
const STATS: [HeadStatistic, string][] = [
  ["contribution", "DePass contribution"], ["entropy", "attention entropy"],
  ["source_weight", "weight on source"], ["max_weight", "max weight"],
];
const STAT_ROW: Partial<Record<HeadStatistic, number>> = { entropy: 0, max_weight: 1, source_weight: 2 };
const REDRAW_TRAITS = [
  "tokens", "target_positions", "query_positions", "target_labels", "n_layers", "n_heads", "contributions",
  "attention_stats", "thumbnails", "detail_attention", "detail_contribution", "detail_key", "selected_target",
  "selected_position", "selected_layer", "selected_head", "statistic", "mode", "llm_id", "target_logit",
  "completeness_error",
] as const;

/** Decode a tensor trait once per value (the grid caches its thumbnail atlas by the decoded object). */
function memoDecode() {
  let raw: TensorDict | null | undefined;
  let out: Tensor | null = null;
  return (value: TensorDict | null | undefined): Tensor | null => {
    if (value !== raw) {
      raw = value;
      out = decodeTensor(value);
    }
    return out;
  };
}

function scaleOf(values: Float32Array | null, stat: HeadStatistic): [number, SignMode] {
  if (stat === "max_weight" || stat === "source_weight") return [1, "absolute"];
  let m = 0;
  for (const v of values ?? []) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  return [m, stat === "contribution" ? "signed" : "absolute"];
}

function render({ model, el }: RenderProps<HeadGridModel>) {
  const root = h("div", "aw-root aw-head-grid");
  if (el.closest(".aw-standalone-host")) root.classList.add("aw-standalone");
  // JupyterLab's shortcuts run first (capture phase) and would take the grid's keys (arrows move notebook
  // cells, Escape leaves edit mode); Lumino skips targets inside an element carrying this attribute.
  root.dataset.lmSuppressShortcuts = "true";
  injectStyle(root);
  const save = debounce(() => model.save_changes(), SAVE_DEBOUNCE_MS);
  // Local set first so the view answers at once; the kernel hears the last value after the debounce.
  function write<K extends keyof HeadGridModel>(key: K, value: HeadGridModel[K]): void {
    if (model.get(key) === value) return;
    model.set(key, value);
    save();
  }
  const thumbs = memoDecode();
  const detailAtt = memoDecode();

  const statSel = h("select");
  statSel.append(...STATS.map(([v, text]) => Object.assign(h("option", "", text), { value: v })));
  statSel.addEventListener("change", () => write("statistic", statSel.value as HeadStatistic));
  const modeBadge = h("span", "aw-badge");
  const busy = busyIndicator();
  const toolbar = responsiveToolbar(root, {
    primary: [labeled("colour by", statSel)], secondary: [], status: [modeBadge, busy],
  });

  const tooltip = h("div", "aw-tooltip");
  const status = viewStatus(root, model, () => draw(), tooltip);
  const { errorBanner, warnBanner, redraw } = status;
  const info = h("div", "aw-info");
  const hint = h("div", "aw-hint",
    "Click a head for its pattern (or arrows + Enter on the grid). Click a generated token to explain it; " +
    "click another token (shift-click any) to pick the source.");
  const text = h("div", "aw-text");
  const legend = h("div", "aw-legend");
  const legendName = h("span");
  const legendBar = h("span", "aw-legend-bar");
  const legendLo = h("span");
  const legendHi = h("span");
  legend.append(legendName, legendLo, legendBar, legendHi);
  const grid = new HeadCanvas(tooltip, {
    open: (l, hd) => { write("selected_layer", l); write("selected_head", hd); },
    move: (l, hd) => { if (model.get("selected_head") >= 0) { write("selected_layer", l); write("selected_head", hd); } },
    close: () => write("selected_head", -1),
  });
  const gridBox = h("div", "aw-hg-box");
  gridBox.appendChild(grid.canvas);
  grid.stickTo(gridBox); // layer and head numbers stay in view while the box scrolls

  const detail = h("div", "aw-detail");
  const detailHead = h("div", "aw-detail-head");
  const detailTitle = h("span", "aw-detail-title");
  const detailInfo = h("span", "aw-info");
  const close = h("button", "aw-detail-close", "\u00d7 close");
  close.type = "button";
  close.setAttribute("aria-label", "close the head detail (Escape)");
  close.addEventListener("click", () => write("selected_head", -1));
  detailHead.append(detailTitle, detailInfo, close);
  const detailNote = h("div", "aw-notice");
  const detailCanvas = new DetailCanvas(tooltip);
  const detailBox = h("div", "aw-detail-box");
  detailBox.appendChild(detailCanvas.canvas);
  detail.append(detailHead, detailNote, detailBox);
  root.append(toolbar.element, errorBanner, warnBanner, info, hint, text, legend, gridBox, detail, tooltip);
  root.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && model.get("selected_head") >= 0) {
      e.preventDefault();
      write("selected_head", -1);
    }
  });
  el.appendChild(root);

  const width = () => Math.max(120, (root.clientWidth || 640) - 14);
  let lastWidth = 0;
  const unwatch = watchWidth(root, () => {
    if (Math.abs(width() - lastWidth) >= 1) redraw();
  });

  function draw() {
    lastWidth = width();
    const tokens: TokenRecord[] = model.get("tokens") || [];
    const targets: number[] = model.get("target_positions") || [];
    const queries: number[] = model.get("query_positions") || [];
    const labels: string[] = model.get("target_labels") || [];
    const nl = model.get("n_layers") || 0;
    const nh = model.get("n_heads") || 0;
    const stat = model.get("statistic");
    const mode = model.get("mode");
    const inRange = (v: number, n: number) => (Number.isInteger(v) && v >= 0 && v < n ? v : -1);
    const sel = inRange(model.get("selected_target"), targets.length);
    const source = inRange(model.get("selected_position"), tokens.length);
    const layer = inRange(model.get("selected_layer"), nl);
    const head = inRange(model.get("selected_head"), nh);
    const open = layer >= 0 && head >= 0;
    Object.assign(root.dataset, {
      selectedTarget: String(sel), selectedSource: String(source), selectedLayer: String(layer),
      selectedHead: String(head), detailOpen: String(open), statistic: stat, mode,
    });

    const contributions = decodeTensor(model.get("contributions"));
    if (contributions && contributions.data.length !== nl * nh) {
      throw new Error(`contributions shape [${contributions.shape}] does not match ${nl} layers x ${nh} heads`);
    }
    root.dataset.checksum = contributions ? checksumFloat32(contributions.data) : "";
    const stats = decodeTensor(model.get("attention_stats"));
    const row = STAT_ROW[stat];
    const unavailable = stat === "contribution" && mode === "attention";
    const values = stat === "contribution"
      ? (unavailable ? null : contributions?.data ?? null)
      : stats && row !== undefined ? stats.data.subarray(row * nl * nh, (row + 1) * nl * nh) : null;
    const [scale, signMode] = scaleOf(values, stat);

    statSel.value = stat;
    (statSel.options[0] as HTMLOptionElement).disabled = mode === "attention";
    statSel.options[0].title = mode === "attention" ? "needs mode='depass': attention mode runs no DePass" : "";
    modeBadge.textContent = mode === "attention" ? "attention only" : "DePass";
    toolbar.setModelId(model.get("llm_id") || "");
    const tokLabel = (p: number) => (tokens[p] ? showWhitespace(displayText(tokens[p])) : "?");
    const targetName = (r: number) => JSON.stringify(showWhitespace(labels[r] ?? tokLabel(targets[r])));

    const warnings: string[] = [];
    if (unavailable) {
      warnings.push("DePass contributions are not computed in mode='attention'; choose an attention statistic, " +
        "or create the view with mode='depass'.");
    } else if (stat === "contribution" && sel >= 0 && (!values || values.every(Number.isNaN))) {
      warnings.push(model.get("busy") ? "computing this target\u2026" : "this target has not been computed.");
    }
    if (stat === "source_weight" && source < 0) warnings.push("no source selected: click a prompt token to pick one.");
    if (source >= 0 && sel >= 0 && source > queries[sel]) {
      warnings.push(`source #${source} comes after the query position ${queries[sel]}: causal heads give it weight 0.`);
    }
    if (sel < 0) warnings.push(targets.length ? "no target selected: click a generated token." : "no targets.");
    warnBanner.textContent = warnings.join("\n");

    const parts: string[] = [];
    if (sel >= 0) {
      parts.push(`target #${sel} ${targetName(sel)} predicted at position ${queries[sel]}`);
      const logit = model.get("target_logit");
      const ce = model.get("completeness_error");
      if (logit != null) parts.push(`logit ${formatValue(logit)}`);
      if (ce != null) parts.push(`completeness error ${(100 * ce).toPrecision(2)}%`);
    }
    if (source >= 0) parts.push(`source #${source} ${JSON.stringify(tokLabel(source))}`);
    info.textContent = parts.join(" \u00b7 ");

    const key = model.get("detail_key") || [];
    const keyMatch = open && key[0] === layer && key[1] === head;
    const perSource = keyMatch && key[2] === sel ? decodeVector(model.get("detail_contribution")) : null;
    let srcScale = 0;
    for (const v of perSource ?? []) if (Number.isFinite(v)) srcScale = Math.max(srcScale, Math.abs(v));
    renderTokenText(text, {
      tokens, targetOf: new Map(targets.map((p, i) => [p, i])), values: perSource, scale: srcScale, mode: "signed",
      selectedPosition: sel >= 0 ? targets[sel] : -1, hideSpecial: false, markWhitespace: true,
      selectedSource: source, onSelect: (r) => write("selected_target", r), onSource: (p) => write("selected_position", p),
      describe: (p) => `#${p} ${JSON.stringify(tokLabel(p))}` +
        (perSource ? `\ndirect contribution of L${layer} H${head} ${formatValue(perSource[p])}` : ""),
    }, tooltip);

    legendBar.style.background = legendGradient(signMode);
    legendLo.textContent = signMode === "signed" ? formatValue(-scale) : "0";
    legendName.textContent = `${STATS.find(([v]) => v === stat)?.[1] ?? stat}:`;
    legendHi.textContent = formatValue(scale);

    const cell = (l: number, hd: number) => l * nh + hd;
    grid.draw({
      nLayers: nl, nHeads: nh, values, mode: signMode, scale, thumbs: thumbs(model.get("thumbnails")),
      selected: [layer, head], selectedLayer: layer,
      describe: (l, hd) => {
        const lines = [`layer ${l} head ${hd}`];
        if (contributions && mode === "depass") lines.push(`contribution ${formatValue(contributions.data[cell(l, hd)])}`);
        if (stats) {
          lines.push(`entropy ${formatValue(stats.data[cell(l, hd)])} nats`, `max weight ${formatValue(stats.data[nl * nh + cell(l, hd)])}`);
          if (source >= 0) lines.push(`weight on source ${formatValue(stats.data[2 * nl * nh + cell(l, hd)])}`);
        }
        return lines.join("\n");
      },
    }, lastWidth);

    detail.classList.toggle("aw-hidden", !open);
    if (!open) return;
    detailTitle.textContent = `layer ${layer} \u00b7 head ${head}`;
    const c = contributions?.data[cell(layer, head)];
    detailInfo.textContent = mode === "depass" && c !== undefined && Number.isFinite(c) && sel >= 0
      ? `contribution ${formatValue(c)} to ${targetName(sel)}` : "";
    const att = keyMatch ? detailAtt(model.get("detail_attention")) : null;
    detailNote.textContent = !keyMatch ? "loading the head's pattern\u2026"
      : att ? "rows: queries, columns: keys (sources); the bars under it: direct contribution per source"
        : "this head's full pattern is not available here.";
    detailBox.classList.toggle("aw-hidden", !att && !perSource);
    if (att || perSource) {
      detailCanvas.draw({
        labels: tokens.map((_, p) => tokLabel(p)), attention: att, contribution: perSource,
        query: sel >= 0 ? queries[sel] : -1, source,
      }, lastWidth);
    }
  }

  return listen(model, REDRAW_TRAITS, status, () => save.cancel(), unwatch, () => toolbar.dispose());
}

export default { render };
