"""Path integrals of gradients for many independent paths at once: the IG engine of LIG (and layer IG).

A "row" is one path: start x'_r, end x_r, and a scalar objective f_r. Rows may share nothing (LIG's
target-specific ITB baselines) or everything but the objective (one path, many targets). Every
(row, node) pair is one point; points are evaluated in chunks that fit a memory budget, so one forward
and one backward serve many rows and nodes at once:

    IG_r = (x_r - x'_r) * sum_k w_k * grad f_r(x'_r + a_k (x_r - x'_r)).

Token IG (core/methods/integrated_gradients.py) keeps its own evaluator: there every target shares
one path, so one gradient per point serves all of them through a different reduction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import torch

from attrwidgets.core.forward import ComputationCancelled
from attrwidgets.core.methods.quadrature import FIXED_RULES, fixed_rule
from attrwidgets.errors import AttrWidgetsError

# f(points (N, *S), rows (N,) long) -> (N,) objective values, differentiable in points
Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_rule(rule: str) -> str:
    if rule not in FIXED_RULES:
        raise AttrWidgetsError(
            f"Unknown quadrature {rule!r} for path integrals over boundaries: use one of {', '.join(FIXED_RULES)}."
        )
    return rule


def integrate_rows(objective: Objective, x: torch.Tensor, baseline: torch.Tensor, *, rule: str, n_steps: int,
                   points_per_chunk: int, skip_origin: bool = False, on_chunk: Callable[[int], None] | None = None,
                   cancel: threading.Event | None = None) -> torch.Tensor:
    """IG of every row: x, baseline (R, *S) -> (R, *S) float32 attributions, summed as the quadrature says.

    skip_origin: the node at alpha = 0 contributes nothing. For an L2 objective ||F(.) - F(x')|| the norm is
    not differentiable there and its gradient is taken as 0 (METHODS.md), so it is never evaluated: a batched
    re-evaluation of F(x') differs from the stored one by float noise, whose unit direction would leak in.
    """
    nodes, weights = fixed_rule(check_rule(rule), n_steps)
    if skip_origin:
        keep = nodes > 0
        nodes, weights = nodes[keep], weights[keep]
    rows = x.shape[0]
    delta = x - baseline
    grad_sum = torch.zeros_like(x, dtype=torch.float32)
    pairs_node = np.repeat(np.arange(len(nodes)), rows)  # node-major: a chunk holds few nodes, many rows
    pairs_row = np.tile(np.arange(rows), len(nodes))
    chunk = max(1, int(points_per_chunk))
    for start in range(0, len(pairs_row), chunk):
        if cancel is not None and cancel.is_set():
            raise ComputationCancelled("Computation cancelled: a newer request replaced it.")
        r = torch.as_tensor(pairs_row[start:start + chunk], device=x.device)
        k = pairs_node[start:start + chunk]
        alpha = torch.as_tensor(nodes[k], dtype=x.dtype, device=x.device).view(-1, *([1] * (x.dim() - 1)))
        points = (baseline[r] + alpha * delta[r]).detach().requires_grad_(True)
        with torch.enable_grad():
            values = objective(points, r)
            (grad,) = torch.autograd.grad(values.sum(), points)
        w = torch.as_tensor(weights[k], dtype=torch.float32, device=x.device).view_as(alpha)
        grad_sum.index_add_(0, r, grad.float() * w)
        if on_chunk is not None:
            on_chunk(len(r))
    return delta.float() * grad_sum


def relative_completeness(total: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """|sum IG - (f(x) - f(x'))| / |f(x) - f(x')|, elementwise; 0 where both are 0 (nothing to explain)."""
    total, expected = np.asarray(total, np.float64), np.asarray(expected, np.float64)
    gap = np.abs(total - expected)
    scale = np.abs(expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(scale > 1e-12, gap / np.maximum(scale, 1e-12), np.where(gap > 1e-12, np.inf, 0.0))
    return out.astype(np.float32)
