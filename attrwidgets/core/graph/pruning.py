"""Pruning an attribution graph (circuit-tracer's rule) and its replacement / completeness scores.

Nodes are kept up to node_threshold of the cumulative influence, then edges, scored on the graph of kept nodes,
up to edge_threshold; then nodes left dangling are dropped until nothing changes: feature-like nodes need a
kept incoming and outgoing edge, error nodes an outgoing one; tokens and logits always stay. Edge scores are
computed on the k x k submatrix of kept nodes only, which keeps pruning a 12000-node dense graph fast.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from attrwidgets.core.graph.influence import (
    TINY,
    as_csr,
    as_dense_tensor,
    check_square,
    edge_influence,
    full_weights,
    is_sparse,
    node_influence,
    row_sums,
)
from attrwidgets.errors import AttrWidgetsError

_SORT_LIMIT = 200_000  # below this a full sort is as fast as the binned search


def find_threshold(scores, fraction: float) -> float:
    """The score at which the scores sorted high to low first reach `fraction` of their total (upstream's rule;
    keep scores >= it). Large inputs are not fully sorted: a weighted histogram over log2(score) finds the bin
    where the cumulative share crosses `fraction`, and only that bin is sorted."""
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 0:
        return np.inf
    if (
        fraction >= 1.0
    ):  # everything with a nonzero score (upstream's float cumsum may drop a negligible tail)
        positive = scores[scores > 0]
        return float(positive.min()) if positive.size else float(scores.max())
    if scores.size <= _SORT_LIMIT or not (scores >= 0).all():
        return _threshold_in(np.sort(scores)[::-1], 0.0, scores.sum(), fraction)
    total = scores.sum()
    positive = scores[scores > 0]
    if total <= 0 or positive.size == 0:
        return float(scores.max())
    exponent = np.log2(positive)
    low = np.floor(exponent.min())
    bins = ((exponent - low) * 16).astype(np.int64)  # 16 bins per octave
    mass = np.bincount(bins, weights=positive)[::-1]  # highest scores first
    above = np.concatenate([[0.0], np.cumsum(mass)[:-1]])
    crossing = int(np.searchsorted((above + mass) / total, fraction))
    if crossing >= mass.size:
        return float(positive.min())  # not reached by an ulp of rounding: keep every positive score
    bin_index = mass.size - 1 - crossing
    chosen = np.sort(positive[bins == bin_index])[::-1]
    lower = positive[
        bins < bin_index
    ]  # rounding can leave the share an ulp short inside the bin: next score down
    fallback = float(lower.max()) if lower.size else float(positive.min())
    return _threshold_in(chosen, above[crossing], total, fraction, fallback=fallback)


def _threshold_in(ordered: np.ndarray, before: float, total: float, fraction: float, fallback=None) -> float:
    if total <= 0:
        return float(ordered[0])
    index = int(np.searchsorted((before + np.cumsum(ordered)) / total, fraction))
    if index < ordered.size:
        return float(ordered[index])
    return float(ordered[-1]) if fallback is None else fallback


def check_threshold(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise AttrWidgetsError(f"{name} must be a number in (0, 1]; got {value!r}.") from None
    if not 0.0 < value <= 1.0:
        raise AttrWidgetsError(
            f"{name} must be in (0, 1] (the fraction of total influence to keep; 1.0 keeps everything); got {value}."
        )
    return value


class PruneResult(NamedTuple):
    node_mask: np.ndarray  # bool (n,): nodes kept
    edge_target: np.ndarray  # int64 (e,): global node index of each kept edge's target
    edge_source: np.ndarray  # int64 (e,)
    edge_weight: np.ndarray  # float32 (e,): signed adjacency entry
    cumulative: np.ndarray  # float32 (n,): cumulative influence score (upstream's "influence" field)
    influence: np.ndarray  # float32 (n,): node influence


def cumulative_scores(influence: np.ndarray) -> np.ndarray:
    """Each node's position in the descending cumulative influence (a share in [0, 1]; small = most influential)."""
    influence = np.asarray(influence, dtype=np.float64)
    order = np.argsort(-influence, kind="stable")
    total = influence.sum()
    cumulative = np.cumsum(influence[order]) / (total if total > 0 else 1.0)
    out = np.empty_like(cumulative)
    out[order] = cumulative
    return out.astype(np.float32)


def _kept_edges(adjacency, keep: np.ndarray, w_kept: np.ndarray, edge_threshold: float, max_steps, rank):
    """Edges among the kept nodes whose scores (on the pruned graph) reach the edge threshold -> global indices."""
    sub_rank = None if rank is None else rank[keep]
    if is_sparse(adjacency):
        sub = as_csr(adjacency)[keep][:, keep].tocoo()
        total = node_influence(sub.tocsr(), w_kept, max_steps=max_steps, rank=sub_rank)
        magnitude = np.abs(sub.data)
        row_total = np.bincount(sub.row, weights=magnitude, minlength=keep.size)
        per_row = (np.asarray(total, dtype=np.float64) + w_kept) / np.maximum(row_total, TINY)
        rows, cols, weights = sub.row, sub.col, sub.data
        values = magnitude * per_row[rows]
    else:
        dense = as_dense_tensor(adjacency)
        index = torch.as_tensor(keep, device=dense.device)
        sub = dense.index_select(0, index).index_select(1, index)
        scores = edge_influence(sub, w_kept, max_steps=max_steps, rank=sub_rank)
        rows_t, cols_t = torch.nonzero(scores, as_tuple=True)
        values = scores[rows_t, cols_t].cpu().numpy()
        weights = sub[rows_t, cols_t].cpu().numpy()
        rows, cols = rows_t.cpu().numpy(), cols_t.cpu().numpy()
    chosen = values > 0
    if chosen.any():
        chosen &= values >= find_threshold(values[chosen], edge_threshold)
    return keep[rows[chosen]], keep[cols[chosen]], weights[chosen].astype(np.float32)


def prune_masks(
    adjacency,
    logit_weights,
    n_tokens: int,
    n_logits: int,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
    *,
    needs_input=None,
    max_steps: int | None = None,
    influence=None,
    always_keep=None,
    rank=None,
) -> PruneResult:
    """Upstream's pruning: nodes up to node_threshold of cumulative influence, then edges (scored on the pruned
    graph) up to edge_threshold, then dangling nodes dropped until nothing changes.

    The last n_tokens + n_logits nodes (tokens, then logits) are always kept. Every other node needs a kept
    outgoing edge; those marked in `needs_input` (bool (n,); default: all of them) also need a kept incoming
    edge (features and components do; error nodes do not). `influence` may pass a precomputed node influence.
    """
    node_threshold = check_threshold("node_threshold", node_threshold)
    edge_threshold = check_threshold("edge_threshold", edge_threshold)
    n = check_square(adjacency)
    fixed = n_tokens + n_logits
    if fixed > n or n_logits < 1:
        raise AttrWidgetsError(
            f"Cannot prune: {n_tokens} tokens + {n_logits} logits do not fit a graph of {n} nodes."
        )
    w = full_weights(logit_weights, n)
    if influence is None:
        influence = node_influence(adjacency, w, max_steps=max_steps, rank=rank)
    if isinstance(influence, torch.Tensor):
        influence = influence.detach().cpu().numpy()
    influence = np.asarray(influence, dtype=np.float32)
    if rank is not None:
        rank = np.asarray(rank, dtype=np.int64)

    node_mask = influence >= find_threshold(influence, node_threshold)
    node_mask[n - fixed :] = True
    removable = np.zeros(n, dtype=bool)
    removable[: n - fixed] = True
    if always_keep is not None and len(always_keep):
        node_mask[np.asarray(always_keep, dtype=np.int64)] = True
        removable[np.asarray(always_keep, dtype=np.int64)] = False
    keep = np.flatnonzero(node_mask)
    target, source, weight = _kept_edges(adjacency, keep, w[keep], edge_threshold, max_steps, rank)

    wants_input = (
        removable.copy() if needs_input is None else (np.asarray(needs_input, dtype=bool) & removable)
    )
    while True:  # each removal can strand more nodes; a few rounds at most (about the depth of the graph)
        alive = node_mask[target] & node_mask[source]
        has_out = np.bincount(source[alive], minlength=n) > 0
        has_in = np.bincount(target[alive], minlength=n) > 0
        dangling = node_mask & removable & (~has_out | (wants_input & ~has_in))
        if not dangling.any():
            break
        node_mask &= ~dangling
    alive = node_mask[target] & node_mask[source]
    return PruneResult(
        node_mask, target[alive], source[alive], weight[alive], cumulative_scores(influence), influence
    )


def graph_scores(
    adjacency, logit_weights, token_index, error_index, *, influence=None, max_steps=None, rank=None
):
    """(replacement, completeness) as in later circuit-tracer versions' compute_graph_scores."""
    n = check_square(adjacency)
    w = full_weights(logit_weights, n)
    if influence is None:
        influence = node_influence(adjacency, w, max_steps=max_steps, rank=rank)
    if isinstance(influence, torch.Tensor):
        influence = influence.detach().cpu().numpy()
    influence = np.asarray(influence, dtype=np.float64)
    token_inf = influence[token_index].sum()
    error_inf = influence[error_index].sum()
    replacement = float(token_inf / (token_inf + error_inf)) if token_inf + error_inf > 0 else 0.0
    error_share = _error_share(adjacency, np.asarray(error_index, dtype=np.int64))
    out_weight = influence + w
    total = out_weight.sum()
    completeness = float(((1.0 - error_share) * out_weight).sum() / total) if total > 0 else 0.0
    return replacement, completeness


def _error_share(adjacency, error_index: np.ndarray) -> np.ndarray:
    """For each row, the share of its |input| that comes from error nodes (0 for rows with no input)."""
    sums = row_sums(adjacency)
    if is_sparse(adjacency):
        part = np.asarray(abs(as_csr(adjacency)[:, error_index]).sum(axis=1)).ravel()
        return part / np.maximum(sums, TINY)
    dense = as_dense_tensor(adjacency)
    index = torch.as_tensor(error_index, device=dense.device)
    part = dense.index_select(1, index).abs().sum(dim=1)
    return (part / sums.clamp(min=TINY)).cpu().double().numpy()
