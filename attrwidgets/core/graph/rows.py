"""The adjacency's rows: logit rows first, then feature (or component) rows, all of them or the most
influential ones, in batches of backward sweeps (core/graph/sweep.py).

With max_feature_nodes below the number of candidates, candidates are visited in order of their influence on
the logits through the rows computed so far, re-ranked every few batches (circuit-tracer's queue), so the
kept nodes are the ones that matter. With all of them, batches go by position so that each sweep covers
only the prefix its targets can see, and starts at the highest layer among them.
"""

from __future__ import annotations

import threading

import torch

from attrwidgets.core.chunks import run_in_chunks
from attrwidgets.core.forward import ComputationCancelled
from attrwidgets.core.graph.replacement import Replacement

RERANK_EVERY = 4  # batches between influence re-rankings (circuit-tracer's update_interval)


def partial_influence(rows: torch.Tensor, row_node: torch.Tensor, logit_weights: torch.Tensor, n_logits: int,
                      max_iter: int = 1024) -> torch.Tensor:
    """Influence on the logits of every column, through the rows computed so far (row_node: the node each row
    belongs to: a column index, or n_columns + i for logit i)."""
    n_columns = rows.shape[1]
    normalized = rows.abs()
    normalized /= normalized.sum(1, keepdim=True).clamp(min=1e-10)
    prod = torch.zeros(n_columns + n_logits, device=rows.device)
    prod[n_columns:] = logit_weights
    influence = torch.zeros(n_columns, device=rows.device)
    for _ in range(max_iter):
        step = prod[row_node] @ normalized
        if not step.any():
            return influence
        influence += step
        prod = torch.cat([step, torch.zeros(n_logits, device=rows.device)])
    raise RuntimeError("Influence did not converge: the rows have a cycle (an edge runs backward).")


class RowBuilder:
    def __init__(self, rep: Replacement, *, batch_size: int, progress: bool, cancel: threading.Event | None):
        self.rep, self.batch_size, self.cancel = rep, batch_size, cancel
        self.sweep = rep.sweep()
        self.progress = progress

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise ComputationCancelled("Computation cancelled: a newer request replaced it.")

    def logit_rows(self, directions: torch.Tensor) -> torch.Tensor:
        rep, out = self.rep, []

        def run(start: int, stop: int) -> None:
            d = directions[start:stop]
            reads = rep.logit_reads(d, torch.arange(len(d)))
            out.append(self.sweep.rows(reads, len(d), rep.n_columns, rep.length, rep.n_layers - 1,
                                       check=self.check_cancel).cpu())

        # out of device memory: the batch is halved and retried (core/chunks.py); rows do not depend on it
        self.batch_size = run_in_chunks(len(directions), self.batch_size, run)
        return torch.cat(out)

    def target_rows(self, columns: torch.Tensor) -> torch.Tensor:
        """Rows of one batch of target columns (any mix of layers and positions)."""
        rep, out = self.rep, []

        def run(start: int, stop: int) -> None:
            part = columns[start:stop]
            reads = rep.reads(part)
            length = int(rep.columns_position[part].max()) + 1
            top = int(rep.columns_layer[part].max())
            out.append(self.sweep.rows(reads, len(part), rep.n_columns, length, top, check=self.check_cancel).cpu())

        self.batch_size = run_in_chunks(len(columns), self.batch_size, run)
        return torch.cat(out)

    def batches_by_position(self) -> list[torch.Tensor]:
        """Every candidate, in batches by position (then layer), so that sweeps run on short prefixes."""
        rep, n_cand = self.rep, self.rep.n_target_candidates
        order = torch.argsort(rep.columns_position[:n_cand] * (rep.n_layers + 1) + rep.columns_layer[:n_cand],
                              stable=True)
        return [order[s:s + self.batch_size] for s in range(0, n_cand, self.batch_size)]

    def fill_adjacency(self, logit_directions: torch.Tensor, adjacency: torch.Tensor) -> None:
        """Every candidate kept and a dense graph: each row goes straight to its node's row of the (n, n)
        adjacency (candidate c at row c, logit i at row n_columns + i; the node order assemble() gives), so
        the graph is never held twice (rows, then a reordered copy, then the adjacency: 2.5x its size)."""
        n_columns = self.rep.n_columns
        bar = _bar(self.progress, self.rep.n_target_candidates + len(logit_directions))
        try:
            adjacency[n_columns:, :n_columns] = self.logit_rows(logit_directions)
            bar.update(len(logit_directions))
            for batch in self.batches_by_position():
                adjacency[batch, :n_columns] = self.target_rows(batch)
                bar.update(len(batch))
        finally:
            bar.close()

    def build(self, logit_directions: torch.Tensor, logit_weights: torch.Tensor, max_nodes: int | None):
        """-> (rows (n_logits + k, n_columns), the k target columns in row order)."""
        rep = self.rep
        n_cand, n_logits = rep.n_target_candidates, len(logit_directions)
        k = n_cand if max_nodes is None else min(max_nodes, n_cand)
        rows = torch.zeros(n_logits + k, rep.n_columns)
        row_node = torch.zeros(n_logits + k, dtype=torch.long)
        bar = _bar(self.progress, k + n_logits)
        try:
            rows[:n_logits] = self.logit_rows(logit_directions)
            row_node[:n_logits] = rep.n_columns + torch.arange(n_logits)
            bar.update(n_logits)
            done = n_logits
            if k == n_cand:
                for batch in self.batches_by_position():
                    rows[done:done + len(batch)] = self.target_rows(batch)
                    row_node[done:done + len(batch)] = batch
                    done += len(batch)
                    bar.update(len(batch))
            else:
                visited = torch.zeros(n_cand, dtype=torch.bool)
                while done < n_logits + k:
                    influence = partial_influence(rows[:done], row_node[:done], logit_weights, n_logits)[:n_cand]
                    rank = torch.argsort(influence, descending=True)
                    pending = rank[~visited[rank]][: min(RERANK_EVERY * self.batch_size, n_logits + k - done)]
                    for s in range(0, len(pending), self.batch_size):
                        batch = pending[s:s + self.batch_size]
                        rows[done:done + len(batch)] = self.target_rows(batch)
                        row_node[done:done + len(batch)] = batch
                        visited[batch] = True
                        done += len(batch)
                        bar.update(len(batch))
        finally:
            bar.close()
        return rows, row_node[n_logits:]


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(progress: bool, total: int):
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="attribution graph", unit="row", leave=False)
