"""The three LIG routes of one block, each an L2-scalarised set-to-set IG (docs/methods/lig.md).

    layer (z->z): L_j(a) = || block(z'(a))_j - block(z')_j ||, sources all positions of z;
    att   (z->u): L_jh(a) = || write_h(z'(a))_j - write_h(z')_j ||, head h's write into the residual stream;
    mlp   (u->z): L_j(a) = || tail(u'_j(a)) - tail(u'_j) ||, sources the D dimensions of u_j.

Each target (and head) is one row of core/integrate.py: rows never share a path when the baseline is
target-specific (ITB), so (row, node) pairs are batched freely. The baseline output F(x') is computed once
per row, and the alpha = 0 node is skipped (its norm gradient is 0 by definition).

Unlike the upstream package, z->u attributes each head's write AFTER the output projection (its share of
the attention output, which sums over heads to that output), and the BERT route perturbs this layer's
input directly instead of re-embedding and replaying earlier layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from attrwidgets.core.boundaries import Boundaries
from attrwidgets.core.frozen_ops import default_budget
from attrwidgets.core.integrate import integrate_rows, relative_completeness
from attrwidgets.core.single_query import block_output_at, head_writes_at

MAX_POINTS_PER_CHUNK = 512


@dataclass
class RouteResult:
    scores: np.ndarray  # (rows, n_sources): positions for layer/att, hidden dims for mlp
    expected: np.ndarray  # (rows,) ||F(x) - F(x')||, what each row's scores must sum to
    error: np.ndarray  # (rows,) relative completeness error


@dataclass
class PathSettings:
    rule: str
    n_steps: int
    budget: int | None = None  # bytes per chunk; None = default_budget(device)
    on_chunk: object = None  # callable(n_points) for progress
    cancel: object = None  # threading.Event


def points_per_chunk(b: Boundaries, length: int, budget: int | None) -> int:
    """How many block evaluations (forward + backward) fit the budget: a rough activation estimate."""
    cfg = b.model.config
    d = b.hidden_size
    inter = getattr(cfg, "intermediate_size", None) or 4 * d
    per_point = 4 * 2 * length * (12 * d + 3 * inter + 2 * b.n_heads * length)
    budget = default_budget(b.handle.device) // 2 if budget is None else int(budget)
    return int(max(1, min(MAX_POINTS_PER_CHUNK, budget // max(per_point, 1))))


def _itb(z: torch.Tensor, targets: list[int]) -> torch.Tensor:
    """(n_targets, T, D): for target j, z_j at every position."""
    return z[targets].unsqueeze(1).expand(-1, z.shape[0], -1).contiguous()


def input_baseline(z: torch.Tensor, targets: list[int], baseline: str) -> torch.Tensor:
    if baseline == "zero":
        return torch.zeros(len(targets), *z.shape, dtype=z.dtype, device=z.device)
    return _itb(z, targets)  # "self_input_token"


def _finish(attributions: torch.Tensor, expected: torch.Tensor) -> RouteResult:
    scores = attributions.double().cpu().numpy()
    exp = expected.double().cpu().numpy()
    return RouteResult(scores=scores, expected=exp, error=relative_completeness(scores.sum(axis=1), exp))


def layer_route(b: Boundaries, layer: int, targets: list[int], baseline: str, path: PathSettings) -> RouteResult:
    """z->z: rows = targets, scores (n_targets, T) summed over D."""
    z = b.state("input", layer)
    base = input_baseline(z, targets, baseline)
    x = z.unsqueeze(0).expand_as(base)
    target_of_row = torch.as_tensor(targets, device=z.device)
    with torch.no_grad():
        reference = b.run_block(layer, base)[torch.arange(len(targets)), target_of_row]  # (R, D)
        actual = b.state("output", layer)[target_of_row]

    def objective(points, rows):
        out = block_output_at(b, layer, points, target_of_row[rows])  # only query j_row is needed
        return torch.linalg.vector_norm(out - reference[rows], dim=-1)

    ig = integrate_rows(objective, x, base, rule=path.rule, n_steps=path.n_steps, skip_origin=True,
                        points_per_chunk=points_per_chunk(b, z.shape[0], path.budget),
                        on_chunk=path.on_chunk, cancel=path.cancel)
    return _finish(ig.sum(-1), torch.linalg.vector_norm(actual - reference, dim=-1))


def att_route(b: Boundaries, layer: int, targets: list[int], heads: list[int], baseline: str,
              path: PathSettings) -> RouteResult:
    """z->u: rows = (target, head) pairs in target-major order, scores (n_targets * n_heads, T)."""
    z = b.state("input", layer)
    per_target = input_baseline(z, targets, baseline)  # (n_t, T, D)
    n_t, n_h = len(targets), len(heads)
    target_of_row = torch.as_tensor(targets, device=z.device).repeat_interleave(n_h)
    head_of_row = torch.as_tensor(heads, device=z.device).repeat(n_t)
    base = per_target.repeat_interleave(n_h, dim=0)  # (n_t * n_h, T, D)
    x = z.unsqueeze(0).expand_as(base)
    rows_all = torch.arange(len(base), device=z.device)
    with torch.no_grad():
        reference = b.head_writes(layer, per_target)  # (n_t, T, H, D)
        reference = reference.repeat_interleave(n_h, dim=0)[rows_all, target_of_row, head_of_row]
        actual = b.head_writes(layer, z.unsqueeze(0))[0][target_of_row, head_of_row]

    def objective(points, rows):
        writes = head_writes_at(b, layer, points, target_of_row[rows])  # (N, H, D) at query j_row only
        picked = writes[torch.arange(len(rows), device=writes.device), head_of_row[rows]]
        return torch.linalg.vector_norm(picked - reference[rows], dim=-1)

    ig = integrate_rows(objective, x, base, rule=path.rule, n_steps=path.n_steps, skip_origin=True,
                        points_per_chunk=points_per_chunk(b, z.shape[0], path.budget),
                        on_chunk=path.on_chunk, cancel=path.cancel)
    return _finish(ig.sum(-1), torch.linalg.vector_norm(actual - reference, dim=-1))


def mlp_baseline_input(b: Boundaries, layer: int, targets: list[int], baseline: str) -> torch.Tensor:
    """u'_j per target, (n_targets, D): zero, or the MLP input the ITB input produces (att_itb_a0)."""
    u = b.state("mid", layer)
    if baseline == "zero":
        return torch.zeros(len(targets), u.shape[-1], dtype=u.dtype, device=u.device)
    z = b.state("input", layer)
    with torch.no_grad():
        mids = b.run_to_mid(layer, _itb(z, targets))  # (n_t, T, D)
    return mids[torch.arange(len(targets)), torch.as_tensor(targets, device=u.device)]


def mlp_route(b: Boundaries, layer: int, targets: list[int], baseline: str, path: PathSettings,
              residual: bool = True) -> RouteResult:
    """u->z: rows = targets, scores (n_targets, D) per hidden dimension of u_j."""
    u = b.state("mid", layer)[targets].unsqueeze(1)  # (n_t, 1, D): the tail is position-wise
    base = mlp_baseline_input(b, layer, targets, baseline).unsqueeze(1)
    with torch.no_grad():
        reference = b.run_tail(layer, base, residual)[:, 0]
        actual = b.run_tail(layer, u, residual)[:, 0]

    def objective(points, rows):
        return torch.linalg.vector_norm(b.run_tail(layer, points, residual)[:, 0] - reference[rows], dim=-1)

    ig = integrate_rows(objective, u, base, rule=path.rule, n_steps=path.n_steps, skip_origin=True,
                        points_per_chunk=points_per_chunk(b, 1, path.budget),
                        on_chunk=path.on_chunk, cancel=path.cancel)
    return _finish(ig[:, 0], torch.linalg.vector_norm(actual - reference, dim=-1))
