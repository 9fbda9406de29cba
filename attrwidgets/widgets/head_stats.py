"""Numbers the HeadGrid view draws that are not DePass itself: attention statistics per head at a query
position, max-pooled pattern thumbnails, and the rows/labels of a static HeadContributions.

Pure numpy (no widget imports), so the standalone page and the tests can share them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attrwidgets.errors import AttrWidgetsError

THUMB_SIZE = 24  # thumbnails are S x S with S = min(T, THUMB_SIZE)
STATISTICS = ("contribution", "entropy", "source_weight", "max_weight")
STAT_ROWS = ("entropy", "max_weight", "source_weight")  # order of attention_stats' first axis


def check_attention(attention: Any, n_tokens: int) -> np.ndarray:
    a = np.asarray(attention, dtype=np.float32)
    if a.ndim != 4 or a.shape[2:] != (n_tokens, n_tokens):
        raise AttrWidgetsError(
            f"attention must be (L, H, T, T) with T = {n_tokens} tokens (rows queries, columns keys), "
            f"got shape {a.shape}."
        )
    return a


def thumbnails(attention: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """(L, H, T, T) -> (L, H, S, S), S = min(T, size): max-pooled over equal bins of queries and keys, so a
    single sharp weight (a previous-token diagonal, an attention sink) survives the downsampling."""
    n_l, n_h, t, _ = attention.shape
    if t == 0:
        return np.zeros((n_l, n_h, 0, 0), np.float32)
    s = min(t, size)
    starts = (np.arange(s) * t) // s  # strictly increasing because s <= t
    pooled = np.maximum.reduceat(attention, starts, axis=2)
    return np.ascontiguousarray(np.maximum.reduceat(pooled, starts, axis=3), dtype=np.float32)


def attention_stats(attention: np.ndarray | None, query: int, source: int, n_layers: int,
                    n_heads: int) -> np.ndarray:
    """(3, L, H): entropy (nats) of each head's attention row at `query`, its max weight, and its weight on
    key `source` (NaN when no source is selected). All NaN when there is no query (no target selected)."""
    out = np.full((3, n_layers, n_heads), np.nan, np.float32)
    if attention is None or not 0 <= query < attention.shape[2]:
        return out
    rows = attention[:, :, query, :].astype(np.float64)  # (L, H, T) keys
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(rows > 0, rows * np.log(np.where(rows > 0, rows, 1.0)), 0.0)
    out[0] = -plogp.sum(-1) + 0.0  # + 0.0: no "-0" entropy for a one-hot row
    out[1] = rows.max(-1)
    if 0 <= source < rows.shape[-1]:
        out[2] = rows[..., source]
    return out


def static_rows(result: Any) -> dict:
    """Rows of a HeadContributions: one target, explained at `position`.

    The explained token is normally the next one in the sequence (target row -> position + 1). A prediction
    beyond the sequence (position is the last token) has no token of its own: the row points at `position`
    itself and is labelled with target_text.
    """
    n = len(result.tokens)
    pos = int(result.position)
    target = pos + 1 if pos + 1 < n else pos
    return {"target_positions": [target], "query_positions": [pos], "target_labels": [str(result.target_text)]}


def per_layer_sum(contributions: np.ndarray | None) -> np.ndarray | None:
    """(L,) sum over heads; None when nothing is computed."""
    if contributions is None or not np.isfinite(contributions).any():
        return None
    return np.nansum(contributions, axis=1).astype(np.float32)
