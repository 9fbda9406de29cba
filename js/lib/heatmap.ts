// Targets x sources heatmap: one canvas for the cells, DOM for the labels (clickable, textContent only).
import { colourFor, normalise, type SignMode } from "./colour";
import { clickable, cssVar, h } from "./dom";
import { hideTooltip, showTooltip } from "./tooltip";
import type { Tensor } from "./tensor";

export const CELL_H = 16;

/** Wider cells for short sequences, down to the width a rotated 11px label needs. */
export function cellWidth(nCols: number): number {
  return nCols <= 24 ? 28 : nCols <= 60 ? 20 : 14;
}

export interface RowStat {
  text: string;
  title: string;
  bad?: boolean; // drawn as a warning (e.g. completeness error above the threshold)
}

export interface HeatmapSpec {
  scores: Tensor; // (n_targets, n_positions); rows targets, columns sources
  rows: number[]; // visible rows (target indices), top to bottom
  cols: number[]; // visible columns (source positions), left to right
  scales: Float64Array; // per-row divisor (see colour.rowScales)
  mode: SignMode;
  selected: number; // selected target row
  rowLabel: (r: number) => string;
  colLabel: (c: number) => string;
  rowStats: (r: number) => RowStat[];
  statHeaders: [string, string][]; // [short name, explanation]
  describe: (r: number, c: number) => string; // tooltip text for a cell
  onSelect: (r: number) => void;
  onHover?: (position: number) => void; // the source column under the pointer, -1 none (brushing, lib/brush.ts)
}

export function renderHeatmap(container: HTMLElement, spec: HeatmapSpec, tooltip: HTMLElement): void {
  container.replaceChildren();
  const { rows, cols, scores } = spec;
  const width = scores.shape[1] ?? 0;
  const cellW = cellWidth(cols.length);
  const grid = h("div", "aw-hm");
  grid.style.gridTemplateColumns = `auto ${cols.length * cellW}px`;
  grid.style.gridTemplateRows = `auto repeat(${rows.length}, ${CELL_H}px)`;

  // Left column (sticky, so it stays visible while long sequences scroll): row label, then the per-row
  // stats in fixed-width cells, so they line up under their headers.
  const corner = h("div", "aw-hm-left aw-hm-corner");
  corner.appendChild(h("span", "aw-hm-name"));
  for (const [name, title] of spec.statHeaders) {
    const head = h("span", "aw-hm-stat", name);
    head.title = title;
    corner.appendChild(head);
  }
  grid.appendChild(corner);
  const colBox = h("div", "aw-hm-cols");
  for (const c of cols) {
    const lab = h("div", "aw-hm-collabel", spec.colLabel(c));
    lab.style.width = `${cellW}px`;
    lab.dataset.position = String(c);
    lab.title = `source #${c}`;
    colBox.appendChild(lab);
  }
  grid.appendChild(colBox);

  const canvas = h("canvas", "aw-hm-canvas");
  canvas.style.gridColumn = "2";
  canvas.style.gridRow = `2 / span ${Math.max(1, rows.length)}`;
  canvas.style.width = `${cols.length * cellW}px`;
  canvas.style.height = `${rows.length * CELL_H}px`;

  rows.forEach((r, k) => {
    const left = h("div", "aw-hm-left aw-hm-rowlabel" + (r === spec.selected ? " aw-selected" : ""));
    left.style.gridColumn = "1";
    left.style.gridRow = String(k + 2);
    left.dataset.target = String(r);
    left.title = `target #${r}: click to select`;
    left.appendChild(h("span", "aw-hm-name", spec.rowLabel(r)));
    for (const s of spec.rowStats(r)) {
      const cell = h("span", "aw-hm-stat" + (s.bad ? " aw-bad" : ""), s.text);
      cell.title = s.title;
      left.appendChild(cell);
    }
    clickable(left, () => spec.onSelect(r));
    grid.appendChild(left);
  });
  grid.appendChild(canvas);
  container.appendChild(grid);

  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(cols.length * cellW * dpr));
  canvas.height = Math.max(1, Math.round(rows.length * CELL_H * dpr));
  const ctx = canvas.getContext("2d");
  if (ctx) {
    ctx.scale(dpr, dpr);
    rows.forEach((r, k) => {
      const values = scores.data.subarray(r * width, (r + 1) * width);
      cols.forEach((c, j) => {
        const v = values[c];
        if (Number.isNaN(v)) {
          ctx.fillStyle = "rgba(128,128,128,0.18)"; // not computed yet
        } else {
          ctx.fillStyle = colourFor(normalise(v, spec.scales[r], spec.mode), spec.mode);
        }
        ctx.fillRect(j * cellW, k * CELL_H, cellW - 1, CELL_H - 1);
      });
    });
    const k = rows.indexOf(spec.selected);
    if (k >= 0) {
      ctx.strokeStyle = cssVar(container, "--aw-accent", "#1976d2");
      ctx.lineWidth = 2;
      ctx.strokeRect(1, k * CELL_H + 1, cols.length * cellW - 2, CELL_H - 2);
    }
  }

  const cellAt = (e: MouseEvent): [number, number] | null => {
    const box = canvas.getBoundingClientRect();
    const j = Math.floor((e.clientX - box.left) / cellW);
    const k = Math.floor((e.clientY - box.top) / CELL_H);
    if (j < 0 || k < 0 || j >= cols.length || k >= rows.length) return null;
    return [rows[k], cols[j]];
  };
  canvas.addEventListener("mousemove", (e) => {
    const cell = cellAt(e);
    if (cell) showTooltip(tooltip, spec.describe(cell[0], cell[1]), e);
    else hideTooltip(tooltip);
    spec.onHover?.(cell ? cell[1] : -1);
  });
  canvas.addEventListener("mouseleave", () => {
    hideTooltip(tooltip);
    spec.onHover?.(-1);
  });
  canvas.addEventListener("click", (e) => {
    const cell = cellAt(e);
    if (cell) spec.onSelect(cell[0]);
  });
}
