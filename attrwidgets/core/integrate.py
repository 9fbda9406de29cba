"""Path integrals of gradients for many independent paths at once: the IG engine of LIG (and layer IG).

A "row" is one path: start x'_r, end x_r, and a scalar objective f_r. Rows may share nothing (LIG's
target-specific ITB baselines) or everything but the objective (one path, many targets). Every
(row, node) pair is one point; points are evaluated in chunks that fit a memory budget, so one forward
and one backward serve many rows and nodes at once:

    IG_r = (x_r - x'_r) * sum_k w_k * grad f_r(x'_r + a_k (x_r - x'_r)).

Token IG (core/token/methods/integrated_gradients.py) keeps its own evaluator: there every target shares
one path, so one gradient per point serves all of them through a different reduction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import torch

from attrwidgets.core.chunks import run_in_chunks
from attrwidgets.core.quadrature import QUADRATURES, AdaptivePanels, fixed_rule
from attrwidgets.errors import AttrWidgetsError

# f(points (N, *S), rows (N,) long) -> (N,) objective values, differentiable in points
ADAPTIVE_TOL = 0.005  # adaptive: stop refining once every row's completeness error is below this
Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_rule(rule: str) -> str:
    if rule not in QUADRATURES:
        raise AttrWidgetsError(f"Unknown quadrature {rule!r}: use one of {', '.join(QUADRATURES)}.")
    return rule


class RowPaths:
    """Every row's path evaluated at shared nodes alpha, in memory-sized chunks of (row, node) points:
    the path evaluator adaptive_integral expects, for independent rows."""

    def __init__(self, objective: Objective, x: torch.Tensor, baseline: torch.Tensor, points_per_chunk: int,
                 on_chunk=None, cancel=None):
        self.objective, self.baseline, self.delta = objective, baseline, x - baseline
        self.rows = x.shape[0]
        self.chunk = max(1, int(points_per_chunk))
        self.batch_size = max(1, self.chunk // self.rows)  # path points (alphas) per chunk, as adaptive counts
        self.on_chunk, self.cancel = on_chunk, cancel

    def _each_chunk(self, alphas, work) -> None:
        """work(k, r, alpha) over the (node, row) pairs of `alphas`, in chunks that fit memory (chunks.py)."""
        alphas = np.asarray(alphas, dtype=np.float64)
        node = np.repeat(np.arange(len(alphas)), self.rows)
        row = np.tile(np.arange(self.rows), len(alphas))

        def run(start: int, stop: int) -> None:
            r = torch.as_tensor(row[start:stop], device=self.delta.device)
            k = node[start:stop]
            alpha = torch.as_tensor(alphas[k], dtype=self.delta.dtype, device=self.delta.device)
            work(k, r, alpha.view(-1, *([1] * (self.delta.dim() - 1))))

        self.chunk = run_in_chunks(len(row), self.chunk, run, cancel=self.cancel)

    def __call__(self, alphas):
        """-> values (k, R) numpy, gradients (k, R, *S) float32 on the CPU."""
        values = np.zeros((len(alphas), self.rows))
        grads = torch.zeros(len(alphas), *self.delta.shape, dtype=torch.float32)

        def work(k, r, alpha) -> None:
            points = (self.baseline[r] + alpha * self.delta[r]).detach().requires_grad_(True)
            with torch.enable_grad():
                out = self.objective(points, r)
                (grad,) = torch.autograd.grad(out.sum(), points)
            values[k, r.cpu().numpy()] = out.detach().double().cpu().numpy()
            grads[torch.as_tensor(k), r.cpu()] = grad.float().cpu()
            if self.on_chunk is not None:
                self.on_chunk(len(r))

        self._each_chunk(alphas, work)
        return values, grads

    def values_only(self, alphas) -> np.ndarray:
        values = np.zeros((len(alphas), self.rows))

        def work(k, r, alpha) -> None:
            with torch.no_grad():
                out = self.objective(self.baseline[r] + alpha * self.delta[r], r)
            values[k, r.cpu().numpy()] = out.double().cpu().numpy()

        self._each_chunk(alphas, work)
        return values


def integrate_rows(objective: Objective, x: torch.Tensor, baseline: torch.Tensor, *, rule: str, n_steps: int,
                   points_per_chunk: int, skip_origin: bool = False, on_chunk: Callable[[int], None] | None = None,
                   cancel: threading.Event | None = None) -> torch.Tensor:
    """IG of every row: x, baseline (R, *S) -> (R, *S) float32 attributions, summed as the quadrature says.

    skip_origin: the node at alpha = 0 contributes nothing. For an L2 objective ||F(.) - F(x')|| the norm is
    not differentiable there and its gradient is taken as 0 (docs/methods/lig.md), so it is never evaluated: a batched
    re-evaluation of F(x') differs from the stored one by float noise, whose unit direction would leak in.
    """
    if check_rule(rule) == "adaptive":
        paths = RowPaths(objective, x, baseline, points_per_chunk, on_chunk, cancel)
        f0 = np.zeros(paths.rows) if skip_origin else paths.values_only([0.0])[0]
        f1 = paths.values_only([1.0])[0]
        integral = adaptive_integral(paths, n_steps, f0, f1, ADAPTIVE_TOL)
        return paths.delta.float().cpu().to(x.device) * integral.to(x.device)
    nodes, weights = fixed_rule(rule, n_steps)
    if skip_origin:
        keep = nodes > 0
        nodes, weights = nodes[keep], weights[keep]
    rows = x.shape[0]
    delta = x - baseline
    grad_sum = torch.zeros_like(x, dtype=torch.float32)
    pairs_node = np.repeat(np.arange(len(nodes)), rows)  # node-major: a chunk holds few nodes, many rows
    pairs_row = np.tile(np.arange(rows), len(nodes))

    def run(start: int, stop: int) -> None:
        r = torch.as_tensor(pairs_row[start:stop], device=x.device)
        k = pairs_node[start:stop]
        alpha = torch.as_tensor(nodes[k], dtype=x.dtype, device=x.device).view(-1, *([1] * (x.dim() - 1)))
        points = (baseline[r] + alpha * delta[r]).detach().requires_grad_(True)
        with torch.enable_grad():
            values = objective(points, r)
            (grad,) = torch.autograd.grad(values.sum(), points)
        w = torch.as_tensor(weights[k], dtype=torch.float32, device=x.device).view_as(alpha)
        grad_sum.index_add_(0, r, grad.float() * w)  # only once the span succeeded: a retried span adds once
        if on_chunk is not None:
            on_chunk(len(r))

    run_in_chunks(len(pairs_row), points_per_chunk, run, cancel=cancel)
    return delta.float() * grad_sum


def relative_completeness(total: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """|sum IG - (f(x) - f(x'))| / |f(x) - f(x')|, elementwise; 0 where both are 0 (nothing to explain)."""
    total, expected = np.asarray(total, np.float64), np.asarray(expected, np.float64)
    gap = np.abs(total - expected)
    scale = np.abs(expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(scale > 1e-12, gap / np.maximum(scale, 1e-12), np.where(gap > 1e-12, np.inf, 0.0))
    return out.astype(np.float32)


def adaptive_integral(evaluate, n_steps: int, f0: np.ndarray, f1: np.ndarray, tol: float,
                      first_steps: int | None = None, on_estimate=None):
    """integral_0^1 grad f(baseline + a delta) da for every target, by AdaptivePanels (quadrature.py).

    evaluate: a path evaluator: evaluate(alphas) -> (values (k, n) numpy, gradients (k, n, ...) tensor),
    evaluate.values_only(alphas) -> (k, n), evaluate.delta (broadcastable to a gradient), evaluate.batch_size
    (path points per chunk). Uses at most n_steps gradient evaluations; stops once every target's
    completeness error is below tol. first_steps: panels of the first pass (None: n_steps // 4); few give a
    first answer soon, which the refinement then improves. on_estimate(integral, errors, evaluations), when
    given, sees every intermediate answer (a live view shows it refine). Returns (n, ...) float32.
    """
    delta = evaluate.delta.float().cpu()
    first = max(1, n_steps // 4) if first_steps is None else max(1, min(int(first_steps), n_steps))
    panels = AdaptivePanels(first, f0, f1)
    # f at the initial panel edges: forward passes only, far cheaper than gradient evaluations.
    inner_edges = panels.edges[1:-1]
    panels.add_evaluations(inner_edges, evaluate.values_only(inner_edges))
    grads, slopes = {}, {}

    def run(alphas) -> list[int]:
        values, g = evaluate(alphas)
        panels.add_evaluations(alphas, values)
        indices = list(range(len(grads), len(grads) + len(alphas)))
        for k, gk in zip(indices, g):
            grads[k] = gk
            slopes[k] = (gk * delta).flatten(1).sum(1).numpy()  # df/dalpha per target
        return indices

    panels.build_initial(run(panels.initial_midpoints()))
    scale = np.maximum(np.abs(f1 - f0), 1e-12)
    while True:
        weights = panels.weights()
        estimate = sum(w * slopes[k] for k, w in weights.items())
        errors = np.abs(estimate - (f1 - f0)) / scale
        if np.max(errors) <= tol:
            break
        remaining = n_steps - len(grads)
        # Not tied to the batch size: the nodes (and so the numbers) are the same whatever the memory budget.
        n_split = min(remaining // 2, max(1, len(panels.panels) // 4))
        if n_split < 1:
            break
        if on_estimate is not None:  # an answer that will be refined (the caller gets the last as the result)
            on_estimate(sum(w * grads[k] for k, w in weights.items()), errors, len(grads))
        errors = panels.errors(slopes)
        worst = [int(i) for i in np.argsort(-errors)[:n_split]]
        mids, edges = panels.split(worst)
        panels.add_evaluations(edges, evaluate.values_only(np.array(edges)))
        panels.assign(run(np.array(mids)))
    weights = panels.weights()
    return sum(w * grads[k] for k, w in weights.items())
