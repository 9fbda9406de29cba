"""Node and edge influence on an attribution graph, and pruning (docs/methods/graph.md).

Adjacency: rows are targets, columns sources. Influence is the series I = w (N + N^2 + ...) on the row-normalised
|A| (N), with w the logit probabilities on the logit rows. On a DAG the series ends exactly (w N^k has no
support left after the longest path), so it is summed until the current term is zero; a term still alive after
`max_steps` means a cycle, i.e. edges that are not causal.

Two paths with the same results: dense (torch, any device) and scipy.sparse (CSR) for big graphs, which never
densifies an n x n matrix. N is never materialised on either path: w N = (w / r) |A| with r the row sums of |A|.
Given a topological rank per node (Graph.rank: by layer), both paths solve the series exactly in one pass over
A instead of depth-many mat-vecs. Pruning and the graph scores are in pruning.py.
"""

from __future__ import annotations

import numpy as np
import torch

from attrwidgets.errors import AttrWidgetsError

TINY = 1e-10  # upstream's clamp on row sums: rows with no input stay zero


def is_sparse(adjacency) -> bool:
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    return sp.issparse(adjacency)


def as_dense_tensor(adjacency) -> torch.Tensor:
    if isinstance(adjacency, torch.Tensor):
        if adjacency.layout != torch.strided:
            adjacency = adjacency.to_dense()
        return adjacency if adjacency.is_floating_point() else adjacency.float()
    return torch.as_tensor(np.asarray(adjacency, dtype=np.float32))


def as_csr(adjacency):
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
        return np.asarray(abs(as_csr(adjacency)).sum(axis=1)).ravel()
    return torch.linalg.vector_norm(as_dense_tensor(adjacency), ord=1, dim=1)


def normalize_rows(adjacency):
    """|A| with each row divided by its sum (rows with no input stay zero). Same kind as the input (torch / csr)."""
    if is_sparse(adjacency):
        csr = abs(as_csr(adjacency))
        scale = 1.0 / np.maximum(np.asarray(csr.sum(axis=1)).ravel(), TINY)
        return _scale_rows_csr(csr, scale)
    dense = as_dense_tensor(adjacency).abs()
    return dense / dense.sum(dim=1, keepdim=True).clamp(min=TINY)


def _scale_rows_csr(csr, scale: np.ndarray):
    out = csr.copy()
    out.data = out.data * np.repeat(scale, np.diff(out.indptr)).astype(out.data.dtype)
    return out


def full_weights(logit_weights, n: int) -> np.ndarray:
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
            abs_csr = abs(as_csr(adjacency))
            self.inv_rows = 1.0 / np.maximum(np.asarray(abs_csr.sum(axis=1)).ravel(), TINY)
            self.abs_t = abs_csr.T.tocsr()  # v N = |A|^T (v / r): a CSR mat-vec
        else:
            self.abs = as_dense_tensor(adjacency).abs()
            self.inv_rows = 1.0 / self.abs.sum(dim=1).clamp(min=TINY)

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


def _rank_runs(rank: np.ndarray) -> list[tuple[int, list[tuple[int, int]]]]:
    """Contiguous column runs of each rank, highest rank first: [(rank, [(start, stop), ...]), ...]."""
    cuts = np.flatnonzero(np.diff(rank)) + 1
    starts = np.concatenate([[0], cuts]).tolist()
    stops = np.concatenate([cuts, [rank.size]]).tolist()
    runs: dict[int, list] = {}
    for a, b in zip(starts, stops):
        runs.setdefault(int(rank[a]), []).append((a, b))
    return sorted(runs.items(), reverse=True)


class _Blocks:
    """probe (2, n) @ |A|[:, a:b] for column blocks, and the row scale 1 / sum|A| (dense torch or sparse CSC)."""

    def __init__(self, adjacency):
        self.sparse = is_sparse(adjacency)
        if self.sparse:
            magnitude = abs(as_csr(adjacency))
            self.inv_rows = 1.0 / np.maximum(np.asarray(magnitude.sum(axis=1)).ravel(), TINY)
            self.columns = magnitude.tocsc()  # column slices are cheap in CSC
        else:
            self.dense = as_dense_tensor(adjacency)
            # the 1-norm reduction reads A once without materialising |A|
            self.inv_rows = 1.0 / torch.linalg.vector_norm(self.dense, ord=1, dim=1).clamp(min=TINY)

    def vector(self, values):
        if self.sparse:
            return np.asarray(values, dtype=np.float64)
        return torch.as_tensor(values, dtype=self.dense.dtype, device=self.dense.device)

    def product(self, probe, a: int, b: int):
        if self.sparse:
            return np.asarray(self.columns[:, a:b].T @ probe.T).T
        return probe @ self.dense[:, a:b].abs()

    def stack(self, rows):
        return np.stack(rows) if self.sparse else torch.stack(rows)


def _ranked_influence(adjacency, w: np.ndarray, rank: np.ndarray):
    """Exact I for a graph whose edges all run from a lower to a strictly higher `rank`, in one pass over A.

    I[s] = sum_t (I[t] + w[t]) N[t, s]: visiting source columns from the highest rank down, every target of a
    column is final when the column is read, so one sweep replaces the depth-many mat-vecs of the series.
    Each block also sums |A| over rows of rank <= its own: nonzero means an edge breaks the ranking (not causal,
    or NaN), and None is returned so that the caller falls back to the series, which checks for cycles itself.
    """
    runs = _rank_runs(rank)
    if len(runs) < 2 or sum(len(r) for _, r in runs) > 4 * len(runs) + 64:
        return None  # columns too scattered for block slices: the series is as fast
    blocks = _Blocks(adjacency)
    total = blocks.vector(w) * 1  # I + w, filled in top-down
    influence = blocks.vector(np.zeros(rank.size))
    for r, spans in runs:
        probe = blocks.stack([total * blocks.inv_rows, blocks.vector(rank <= r)])
        for a, b in spans:
            out = blocks.product(probe, a, b)
            if bool(out[1].any()):
                return None
            influence[a:b] = out[0]
        for a, b in spans:
            total[a:b] += influence[a:b]
    finite = np.isfinite(influence).all() if blocks.sparse else torch.isfinite(influence).all()
    return influence if bool(finite) else None  # the series reports NaN / inf


def node_influence(adjacency, logit_weights, *, max_steps: int | None = None, rank=None):
    """Influence of every node on the weighted logits: w (N + N^2 + ...), N the row-normalised |A|.

    adjacency: (n, n) rows targets, columns sources; torch / numpy dense or scipy.sparse.
    logit_weights: one per node (n,), or one per logit node (n_logits,), placed on the last rows.
    rank: optional (n,) ints with every edge running from a lower to a strictly higher rank (e.g. by layer):
    lets the graph be solved in one pass over A; if an edge breaks it, the series is used instead.
    Returns a torch tensor for torch input, else a numpy array. A cycle raises AttrWidgetsError.
    """
    n = check_square(adjacency)
    w = full_weights(logit_weights, n)
    total = None
    if rank is not None:
        rank = np.asarray(rank, dtype=np.int64).ravel()
        if rank.shape != (n,):
            raise AttrWidgetsError(f"rank has {rank.size} entries; expected one per node ({n}).")
        total = _ranked_influence(adjacency, w, rank)
    if total is None:
        total = _series(_Operator(adjacency), w, n, max_steps)
    if isinstance(adjacency, torch.Tensor):
        return total
    if isinstance(total, torch.Tensor):
        total = total.cpu().numpy()
    return np.asarray(total, dtype=np.float32)


def edge_influence(adjacency, logit_weights, *, max_steps: int | None = None, rank=None):
    """Edge scores N[t, s] * (I[t] + w[t]): each edge's share of its target's total influence.

    Dense input -> dense torch (n, n); sparse -> csr_array with the same pattern as |A|.
    """
    n = check_square(adjacency)
    w = full_weights(logit_weights, n)
    total = node_influence(adjacency, w, max_steps=max_steps, rank=rank)
    if is_sparse(adjacency):
        magnitude = abs(as_csr(adjacency))
        inv_rows = 1.0 / np.maximum(np.asarray(magnitude.sum(axis=1)).ravel(), TINY)
        return _scale_rows_csr(magnitude, (np.asarray(total, dtype=np.float64) + w) * inv_rows)
    magnitude = as_dense_tensor(adjacency).abs()
    total = torch.as_tensor(total, dtype=magnitude.dtype, device=magnitude.device)
    per_row = (total + torch.as_tensor(w, dtype=magnitude.dtype, device=magnitude.device)) / magnitude.sum(
        dim=1
    ).clamp(min=TINY)
    return magnitude * per_row[:, None]
