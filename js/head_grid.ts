// HeadGrid view: the prompt as running text, a layers x heads grid on a canvas coloured by a statistic, and the
// open head's detail (its full pattern and per-source contributions, fetched from the kernel on request).
// Python side: attrwidgets/widgets/head_grid.py (same trait names, see types.ts HeadGridModel).
import type { HeadGridModel, HeadStatistic, RenderProps, TensorDict, TokenRecord } from "./types";
import { checksumFloat32 } from "./lib/checksum";
import { formatValue, legendGradient, type SignMode } from "./lib/colour";
import { h, showWhitespace } from "./lib/dom";
import { HeadCanvas } from "./lib/head_canvas";
import { labeled } from "./lib/layout";
import { DetailCanvas } from "./lib/head_detail";
import { decodeTensor, decodeVector, type Tensor } from "./lib/tensor";
import { renderTokenText, tokenLabel } from "./lib/token_text";
import { createView, notComputed, selection, type View } from "./lib/view_base";

export { standalone } from "./lib/head_local"; // used by the standalone HTML page only

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

/** The toolbar: the statistic that colours the grid, and a badge naming the mode. */
function controls({ write, toolbar }: View<HeadGridModel>) {
  const statSel = h("select");
  statSel.append(...STATS.map(([v, text]) => Object.assign(h("option", "", text), { value: v })));
  statSel.addEventListener("change", () => write("statistic", statSel.value as HeadStatistic));
  const modeBadge = h("span", "aw-badge");
  const bar = toolbar({ primary: [labeled("colour by", statSel)], secondary: [], status: [modeBadge] });
  return { bar, statSel, modeBadge };
}

/** The open head's panel: title, contribution, a close button, and its pattern on a canvas. */
function detailPanel(view: View<HeadGridModel>) {
  const { write, tooltip } = view;
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
  const detailCanvas = new DetailCanvas(tooltip, view.hover);
  const detailBox = h("div", "aw-detail-box");
  detailBox.appendChild(detailCanvas.canvas);
  detail.append(detailHead, detailNote, detailBox);
  return { detail, detailTitle, detailInfo, detailNote, detailCanvas, detailBox, detailAtt: memoDecode() };
}

type Parts = ReturnType<typeof controls> & ReturnType<typeof detailPanel> & {
  view: View<HeadGridModel>; info: HTMLDivElement; text: HTMLDivElement; grid: HeadCanvas;
  legendName: HTMLSpanElement; legendBar: HTMLSpanElement; legendLo: HTMLSpanElement; legendHi: HTMLSpanElement;
  thumbs: ReturnType<typeof memoDecode>;
};

function render({ model, el, brush }: RenderProps<HeadGridModel>) {
  const view = createView(model, el, { className: "aw-head-grid", keys: true, brush });
  const { root, tooltip, write } = view;
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
  const parts: Parts = {
    ...controls(view), ...detailPanel(view), view, info, text, grid, legendName, legendBar, legendLo, legendHi,
    thumbs: memoDecode(),
  };
  view.onBrush(({ hovered, picked }) => {
    parts.detailCanvas.brushed = hovered >= 0 ? hovered : picked;
    parts.detailCanvas.repaint();
  });
  root.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && model.get("selected_head") >= 0) {
      e.preventDefault();
      write("selected_head", -1);
    }
  });
  return view.start({
    top: [parts.bar.element], body: [info, hint, text, legend, gridBox, parts.detail], traits: REDRAW_TRAITS,
    draw: (width) => draw(parts, width), resize: "redraw",
  });
}

function draw(p: Parts, width: number): void {
  const { model, root, tooltip, write } = p.view;
  const tokens: TokenRecord[] = model.get("tokens") || [];
  const targets: number[] = model.get("target_positions") || [];
  const queries: number[] = model.get("query_positions") || [];
  const labels: string[] = model.get("target_labels") || [];
  const nl = model.get("n_layers") || 0;
  const nh = model.get("n_heads") || 0;
  const stat = model.get("statistic");
  const mode = model.get("mode");
  const { target: sel, position: source, layer, head } = selection(model, {
    target: targets.length, position: tokens.length, layer: nl, head: nh,
  });
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

  p.statSel.value = stat;
  (p.statSel.options[0] as HTMLOptionElement).disabled = mode === "attention";
  p.statSel.options[0].title = mode === "attention" ? "needs mode='depass': attention mode runs no DePass" : "";
  p.modeBadge.textContent = mode === "attention" ? "attention only" : "DePass";
  p.bar.setModelId(model.get("llm_id") || "");
  const tokLabel = tokenLabel(tokens);
  const targetName = (r: number) => JSON.stringify(showWhitespace(labels[r] ?? tokLabel(targets[r])));

  p.view.status.warnBanner.textContent = warnings({
    unavailable, stat, sel, values, source, queries, nTargets: targets.length, busy: Boolean(model.get("busy")), root,
  }).join("\n");

  const parts: string[] = [];
  if (sel >= 0) {
    parts.push(`target #${sel} ${targetName(sel)} predicted at position ${queries[sel]}`);
    const logit = model.get("target_logit");
    const errors = decodeVector(model.get("completeness_error"));
    const ce = errors && sel < errors.length ? errors[sel] : NaN;
    if (logit != null) parts.push(`logit ${formatValue(logit)}`);
    if (!Number.isNaN(ce)) parts.push(`completeness error ${(100 * ce).toPrecision(2)}%`);
  }
  if (source >= 0) parts.push(`source #${source} ${JSON.stringify(tokLabel(source))}`);
  p.info.textContent = parts.join(" \u00b7 ");

  const key = model.get("detail_key") || [];
  const keyMatch = open && key[0] === layer && key[1] === head;
  const perSource = keyMatch && key[2] === sel ? decodeVector(model.get("detail_contribution")) : null;
  let srcScale = 0;
  for (const v of perSource ?? []) if (Number.isFinite(v)) srcScale = Math.max(srcScale, Math.abs(v));
  renderTokenText(p.text, {
    tokens, targetOf: new Map(targets.map((q, i) => [q, i])), values: perSource, scale: srcScale, mode: "signed",
    selectedPosition: sel >= 0 ? targets[sel] : -1, hideSpecial: false, markWhitespace: true,
    selectedSource: source, onSelect: (r) => write("selected_target", r), onSource: (q) => write("selected_position", q),
    describe: (q) => `#${q} ${JSON.stringify(tokLabel(q))}` +
      (perSource ? `\ndirect contribution of L${layer} H${head} ${formatValue(perSource[q])}` : ""),
  }, tooltip);

  p.legendBar.style.background = legendGradient(signMode);
  p.legendLo.textContent = signMode === "signed" ? formatValue(-scale) : "0";
  p.legendName.textContent = `${STATS.find(([v]) => v === stat)?.[1] ?? stat}:`;
  p.legendHi.textContent = formatValue(scale);

  const cell = (l: number, hd: number) => l * nh + hd;
  p.grid.draw({
    nLayers: nl, nHeads: nh, values, mode: signMode, scale, thumbs: p.thumbs(model.get("thumbnails")),
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
  }, width);

  p.detail.classList.toggle("aw-hidden", !open);
  if (!open) return;
  const c = contributions?.data[cell(layer, head)];
  drawDetail(p, {
    layer, head, source, keyMatch, perSource, labels: tokens.map((_, q) => tokLabel(q)),
    query: sel >= 0 ? queries[sel] : -1,
    contribution: mode === "depass" && c !== undefined && Number.isFinite(c) && sel >= 0
      ? `contribution ${formatValue(c)} to ${targetName(sel)}` : "",
  }, width);
}

interface WarningsOf {
  unavailable: boolean; stat: HeadStatistic; sel: number; values: Float32Array | null; source: number;
  queries: number[]; nTargets: number; busy: boolean; root: HTMLElement;
}

function warnings({ unavailable, stat, sel, values, source, queries, nTargets, busy, root }: WarningsOf): string[] {
  const out: string[] = [];
  if (unavailable) {
    out.push("DePass contributions are not computed in mode='attention'; choose an attention statistic, " +
      "or create the view with mode='depass'.");
  } else if (stat === "contribution" && sel >= 0 && (!values || values.every(Number.isNaN))) {
    out.push(busy ? "computing this target\u2026" : notComputed(root, "this target"));
  } else if (stat === "contribution" && sel >= 0 && busy && values?.some(Number.isNaN)) {
    out.push("computing this target: the layers fill in as they finish (the last first)\u2026");
  }
  if (stat === "source_weight" && source < 0) out.push("no source selected: click a prompt token to pick one.");
  if (source >= 0 && sel >= 0 && source > queries[sel]) {
    out.push(`source #${source} comes after the query position ${queries[sel]}: causal heads give it weight 0.`);
  }
  if (sel < 0) out.push(nTargets ? "no target selected: click a generated token." : "no targets.");
  return out;
}

interface DetailOf {
  layer: number; head: number; source: number; query: number; keyMatch: boolean;
  perSource: Float32Array | null; labels: string[]; contribution: string;
}

/** The open head's panel; its pattern arrives from the kernel some time after the head opens (detail_key). */
function drawDetail(p: Parts, d: DetailOf, width: number): void {
  p.detailTitle.textContent = `layer ${d.layer} \u00b7 head ${d.head}`;
  p.detailInfo.textContent = d.contribution;
  const att = d.keyMatch ? p.detailAtt(p.view.model.get("detail_attention")) : null;
  p.detailNote.textContent = !d.keyMatch ? "loading the head's pattern\u2026"
    : att ? "rows: queries, columns: keys (sources); the bars under it: direct contribution per source"
      : "this head's full pattern is not available here.";
  p.detailBox.classList.toggle("aw-hidden", !att && !d.perSource);
  if (att || d.perSource) {
    p.detailCanvas.draw({
      labels: d.labels, attention: att, contribution: d.perSource, query: d.query, source: d.source,
    }, width);
  }
}

export default { render };
