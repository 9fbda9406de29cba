"""Node and edge influence on an attribution graph, and pruning (METHODS.md section 5).

Adjacency: rows are targets, columns sources. Influence is the series I = w (N + N^2 + ...) on the row-normalised
|A| (N), with w the logit probabilities on the logit rows. On a DAG the series ends exactly (w N^k has no
support left after the longest path), so it is summed until the current term is zero; a term still alive after
`max_steps` means a cycle, i.e. edges that are not causal.

Two paths with the same results: dense (torch, any device) and scipy.sparse (CSR) for big graphs, which never
densifies an n x n matrix. N is never materialised on either path: w N = (w / r) |A| with r the row sums of |A|.
Edge scores are only needed among the nodes that survive the node threshold, so that part works on the k x k
submatrix of kept nodes, which is what keeps pruning of a 12000-node dense graph well under a second.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from attrwidgets.errors import AttrWidgetsError

_TINY = 1e-10  # upstream's clamp on row sums: rows with no input stay zero


def is_sparse(adjacency) -> bool:
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    return sp.issparse(adjacency)


def _as_dense_tensor(adjacency) -> torch.Tensor:
    if isinstance(adjacency, torch.Tensor):
        if adjacency.layout != torch.strided:
            adjacency = adjacency.to_dense()
        return adjacency if adjacency.is_floating_point() else adjacency.float()
    return torch.as_tensor(np.asarray(adjacency, dtype=np.float32))


def _as_csr(adjacency):
    import scipy.sparse as sp

    out = sp.csr_array(adjacency)
    if out.dtype.kind != "f":
        out = out.astype(np.float32)
    return out


def check_square(adjacency) -> int:
    shape = tuple(adjacency.shape)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise AttrWidgetsError(
            f"The adjacency must be a square (n, n) matrix (rows targets, columns sources); got shape {shape}."
        )
    return shape[0]


def row_sums(adjacency):
    """Row sums of |A| (torch for dense, numpy for sparse)."""
    if is_sparse(adjacency):
        return np.asarray(abs(_as_csr(adjacency)).sum(axis=1)).ravel()
    return _as_dense_tensor(adjacency).abs().sum(dim=1)


def normalize_rows(adjacency):
    """|A| with each row divided by its sum (rows with no input stay zero). Same kind as the input (torch / csr)."""
    if is_sparse(adjacency):
        csr = abs(_as_csr(adjacency))
        scale = 1.0 / np.maximum(np.asarray(csr.sum(axis=1)).ravel(), _TINY)
        return _scale_rows_csr(csr, scale)
    dense = _as_dense_tensor(adjacency).abs()
    return dense / dense.sum(dim=1, keepdim=True).clamp(min=_TINY)


def _scale_rows_csr(csr, scale: np.ndarray):
    out = csr.copy()
    out.data = out.data * np.repeat(scale, np.diff(out.indptr)).astype(out.data.dtype)
    return out


def _full_weights(logit_weights, n: int) -> np.ndarray:
    if isinstance(logit_weights, torch.Tensor):
        logit_weights = logit_weights.detach().cpu().numpy()
    w = np.asarray(logit_weights, dtype=np.float64).ravel()
    if w.size == n:
        return w
    if w.size == 0 or w.size > n:
        raise AttrWidgetsError(
            f"logit_weights has {w.size} entries; pass one per node ({n}) or one per logit node (the last rows)."
        )
    full = np.zeros(n)
    full[n - w.size :] = w
    return full


class _Operator:
    """v -> v N (one step of the series) without forming N; dense torch or sparse scipy."""

    def __init__(self, adjacency):
        self.sparse = is_sparse(adjacency)
        if self.sparse:
            abs_csr = abs(_as_csr(adjacency))
            self.inv_rows = 1.0 / np.maximum(np.asarray(abs_csr.sum(axis=1)).ravel(), _TINY)
            self.abs_t = abs_csr.T.tocsr()  # v N = |A|^T (v / r): a CSR mat-vec
        else:
            self.abs = _as_dense_tensor(adjacency).abs()
            self.inv_rows = 1.0 / self.abs.sum(dim=1).clamp(min=_TINY)

    def step(self, v):
        if self.sparse:
            return self.abs_t @ (v * self.inv_rows)
        return (v * self.inv_rows) @ self.abs

    def vector(self, w: np.ndarray):
        if self.sparse:
            return w.astype(self.abs_t.dtype)
        return torch.as_tensor(w, dtype=self.abs.dtype, device=self.abs.device)


def _series(op: _Operator, w: np.ndarray, n: int, max_steps: int | None):
    """w N + w N^2 + ... until the term is exactly zero."""
    limit = n if max_steps is None else min(int(max_steps), n)
    current = op.step(op.vector(w))
    total = current.copy() if op.sparse else current.clone()
    steps = 1
    while bool(current.any()):
        if not bool(np.isfinite(total).all() if op.sparse else torch.isfinite(total).all()):
            raise AttrWidgetsError(
                "The adjacency contains NaN or inf: influence is undefined. Check how it was computed."
            )
        if steps > limit:
            raise AttrWidgetsError(
                f"Node influence did not terminate within {limit} steps: the graph has a cycle, so its edges are not "
                "causal (no edge may run backward in layer or position). Check the adjacency (rows targets, columns sources)."
            )
        current = op.step(current)
        total += current
        steps += 1
    return total


def node_influence(adjacency, logit_weights, *, max_steps: int | None = None):
    """Influence of every node on the weighted logits: w (N + N^2 + ...), N the row-normalised |A|.

    adjacency: (n, n) rows targets, columns sources; torch / numpy dense or scipy.sparse.
    logit_weights: one per node (n,), or one per logit node (n_logits,), placed on the last rows.
    Returns a torch tensor for torch input, else a numpy array. A cycle raises AttrWidgetsError.
    """
    n = check_square(adjacency)
    w = _full_weights(logit_weights, n)
    total = _series(_Operator(adjacency), w, n, max_steps)
    if isinstance(adjacency, torch.Tensor):
        return total
    return np.asarray(total, dtype=np.float32)


def edge_influence(adjacency, logit_weights, *, max_steps: int | None = None):
    """Edge scores N[t, s] * (I[t] + w[t]): each edge's share of its target's total influence.

    Dense input -> dense torch (n, n); sparse -> csr_array with the same pattern as |A|.
    """
    n = check_square(adjacency)
    w = _full_weights(logit_weights, n)
    op = _Operator(adjacency)
    total = _series(op, w, n, max_steps)
    if op.sparse:
        return _scale_rows_csr(abs(_as_csr(adjacency)), (np.asarray(total) + w) * op.inv_rows)
    per_row = (total + op.vector(w)) * op.inv_rows
    return op.abs * per_row[:, None]


def find_threshold(scores, fraction: float) -> float:
    """The smallest score s such that the scores >= s hold `fraction` of the total (upstream's rule)."""
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 0:
        return np.inf
    ordered = np.sort(scores)[::-1]
    cumulative = np.cumsum(ordered)
    total = cumulative[-1]
    if total <= 0:
        return float(ordered[0])
    index = int(np.searchsorted(cumulative / total, fraction))
    return float(ordered[min(index, ordered.size - 1)])


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


def _kept_edges(adjacency, keep: np.ndarray, w_kept: np.ndarray, edge_threshold: float, max_steps):
    """Edges among the kept nodes whose scores (on the pruned graph) reach the edge threshold -> global indices."""
    if is_sparse(adjacency):
        sub = _as_csr(adjacency)[keep][:, keep]
        scores = edge_influence(sub, w_kept, max_steps=max_steps).tocoo()
        rows, cols, values = scores.row, scores.col, np.asarray(scores.data)
        weights = np.asarray(sub[rows, cols]).ravel()
    else:
        dense = _as_dense_tensor(adjacency)
        index = torch.as_tensor(keep, device=dense.device)
        sub = dense.index_select(0, index).index_select(1, index)
        scores = edge_influence(sub, w_kept, max_steps=max_steps)
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
    w = _full_weights(logit_weights, n)
    if influence is None:
        influence = node_influence(adjacency, w, max_steps=max_steps)
    if isinstance(influence, torch.Tensor):
        influence = influence.detach().cpu().numpy()
    influence = np.asarray(influence, dtype=np.float32)

    node_mask = influence >= find_threshold(influence, node_threshold)
    node_mask[n - fixed :] = True
    removable = np.zeros(n, dtype=bool)
    removable[: n - fixed] = True
    if always_keep is not None and len(always_keep):
        node_mask[np.asarray(always_keep, dtype=np.int64)] = True
        removable[np.asarray(always_keep, dtype=np.int64)] = False
    keep = np.flatnonzero(node_mask)
    target, source, weight = _kept_edges(adjacency, keep, w[keep], edge_threshold, max_steps)

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


def graph_scores(adjacency, logit_weights, token_index, error_index, *, influence=None, max_steps=None):
    """(replacement, completeness) as in later circuit-tracer versions' compute_graph_scores."""
    n = check_square(adjacency)
    w = _full_weights(logit_weights, n)
    if influence is None:
        influence = node_influence(adjacency, w, max_steps=max_steps)
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
        part = np.asarray(abs(_as_csr(adjacency)[:, error_index]).sum(axis=1)).ravel()
        return part / np.maximum(sums, _TINY)
    dense = _as_dense_tensor(adjacency)
    index = torch.as_tensor(error_index, device=dense.device)
    part = dense.index_select(1, index).abs().sum(dim=1)
    return (part / sums.clamp(min=_TINY)).cpu().double().numpy()
