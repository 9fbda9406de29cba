// How strongly an edge is drawn: opacity and width from its |weight| relative to the strongest edge shown, so the
// strongest paths stand out of a few hundred edges and the faintest are still there to see. Edges are painted in
// batches, one per level (graph_paint.ts), so the mapping goes through a small number of levels.

export const EDGE_LEVELS = 8;
export const FAINTEST_ALPHA = 0.14; // the weakest kept edge: faint, still visible on either theme
export const THINNEST = 0.6; // px
export const THICKEST = 4.5; // px

/** The level (0 faintest .. EDGE_LEVELS - 1 strongest) of an edge of `weight` when the strongest shown has
 * |weight| `maxWeight`. The square root of the share spreads the many weak edges over several levels instead of
 * leaving nearly all of them on the lowest. The sign does not matter (it is the colour); NaN is the faintest. */
export function edgeLevel(weight: number, maxWeight: number): number {
  const share = maxWeight > 0 && Number.isFinite(weight) ? Math.min(1, Math.abs(weight) / maxWeight) : 0;
  return Math.min(EDGE_LEVELS - 1, Math.floor(Math.sqrt(share) * EDGE_LEVELS));
}

/** Opacity and line width of a level. Opacity grows faster than linearly, so that the top levels stand out. */
export function edgeInk(level: number): { alpha: number; width: number } {
  const f = Math.min(1, Math.max(0, level / (EDGE_LEVELS - 1)));
  return { alpha: FAINTEST_ALPHA + (1 - FAINTEST_ALPHA) * f ** 1.5, width: THINNEST + (THICKEST - THINNEST) * f };
}
