"""What one LayerFlow row shows: a layer's signed attribution of every source token to the selected target,
per route and baseline, and the shares the circles are sized by. js/lib/flow_local.ts repeats this for the
standalone page (tests/widgets/test_layer_flow.py checks both give the same numbers).
"""

from __future__ import annotations

import numpy as np

from attrwidgets.core.lig.result import LayerAttribution, head_slices
from attrwidgets.errors import AttrWidgetsError

VIEW_ROUTES = ("layer", "composed", "att", "mlp")  # z->z, ATT x MLP, z->u per head, u->z per head slice
PARTS = {"layer": ("layer",), "composed": ("att", "mlp"), "att": ("att",), "mlp": ("mlp",)}


def per_head(u: np.ndarray, n_heads: int) -> np.ndarray | None:
    """head_slices rounded to float32 as it is sent (the standalone page starts from the same numbers)."""
    slices = head_slices(u, n_heads)
    return None if slices is None else slices.astype(np.float32)


def flow_row(result: LayerAttribution, route: str, baselines: dict, layer: int, target: int,
             head: int) -> tuple[np.ndarray, np.ndarray | None, float] | None:
    """What one layer row shows for target position `target`: (values (T,) signed attribution of each
    source token, head values (H,) or None, completeness error); None while the column is not computed.

    att: head >= 0 that head's z->u column, else the sum over heads; head values = each head's total.
    mlp: u->z is position-wise, so the only source token is the target itself (its total); head values =
    the per-head slices (mlp_per_head). composed: sum_h z2u[j, h, :] * mlp_per_head[j, h], head values =
    each head's term of that sum. js/lib/flow_local.ts repeats this for the standalone page.
    """
    t = result.length
    cols = {p: result.columns.get((p, baselines[p], layer)) for p in PARTS[route]}
    if any(c is None for c in cols.values()):
        return None
    if route == "layer":
        c = cols["layer"]
        return (c.scores[target].astype(np.float64), None, float(c.error[target])) if c.has(target) else None
    att, mlp = cols.get("att"), cols.get("mlp")
    if route == "att":
        if head >= 0:
            if not att.has(target, head):
                return None
            scores = att.scores[target].astype(np.float64)
            return scores[head], scores.sum(-1), float(att.error[target, head])
        if not att.has(target):
            return None
        scores = att.scores[target].astype(np.float64)
        return scores.sum(0), scores.sum(-1), float(np.max(att.error[target]))
    if not mlp.has(target):
        return None
    slices = per_head(mlp.scores[target], result.n_heads)
    if route == "mlp":
        values = np.zeros(t)
        values[target] = np.sum(mlp.scores[target], dtype=np.float64)
        return values, None if slices is None else slices.astype(np.float64), float(mlp.error[target])
    if not att.has(target):
        return None
    if slices is None:
        raise AttrWidgetsError(f"Hidden size {result.hidden_size} is not a multiple of {result.n_heads} heads: "
                               "no per-head MLP slices, so no composed route.")
    scores, m = att.scores[target].astype(np.float64), slices.astype(np.float64)
    error = max(float(np.max(att.error[target])), float(mlp.error[target]))
    return m @ scores, scores.sum(-1) * m, error


def signed_shares(values: np.ndarray) -> np.ndarray:
    """values / sum |values| over the last axis: |share| is the circle area, the sign its colour."""
    total = np.nansum(np.abs(values), axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, values / np.where(total > 0, total, 1), np.where(np.isnan(values), np.nan, 0))
