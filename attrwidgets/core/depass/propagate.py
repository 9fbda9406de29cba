"""Run a component stack from a boundary to the end of the model (or to `end_layer`), layer by layer.

A boundary is (layer, where): where = "input" (block input), "mid" (after attention + residual) or
"output" (block output). The stack is propagated through every half-block after the boundary; the
result is the stack at the end, after the final norm when the run reaches the last block.
"""

from __future__ import annotations

import threading

import torch

from attrwidgets.core.forward import ComputationCancelled
from attrwidgets.core.frozen import FrozenForward
from attrwidgets.core.frozen_ops import apply_norm, attention_step, default_budget, mlp_step
from attrwidgets.errors import AttrWidgetsError

WHERE = ("input", "mid", "output")


def half_steps(start_layer: int, where: str, end_layer: int) -> list[tuple[int, str]]:
    """The (layer, "attn" | "mlp") steps after boundary (start_layer, where), up to block end_layer - 1."""
    steps = []
    for layer in range(start_layer, end_layer):
        if layer == start_layer and where in ("mid", "output"):
            if where == "mid":
                steps.append((layer, "mlp"))
            continue
        steps += [(layer, "attn"), (layer, "mlp")]
    return steps


def propagate(frozen: FrozenForward, X: torch.Tensor, first: torch.Tensor, *, start_layer: int, where: str,
              end_layer: int, split, budget: int | None = None, progress: bool = False,
              cancel: threading.Event | None = None, desc: str = "DePass",
              entering: torch.Tensor | None = None) -> torch.Tensor:
    """X (M, T, D) at the boundary -> (M, T, D) at the end (final-normed when end_layer == n_layers).

    Where attention and MLP run in parallel (GPT-NeoX) the MLP reads the stack as it entered the block:
    kept before each attention step, and given as `entering` by a caller that starts at "mid"."""
    budget = default_budget(X.device) if budget is None else int(budget)

    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise ComputationCancelled("Computation cancelled: a newer request replaced it.")

    steps = half_steps(start_layer, where, end_layer)
    bar = None
    if progress and steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(steps), desc=desc, unit="half-layer", leave=False)
    try:
        for layer, kind in steps:
            check_cancel()
            if kind == "attn":
                entering = X.clone() if frozen.adapter.parallel else None
                attention_step(frozen, layer, X, first, budget, on_chunk=check_cancel)
            else:
                mlp_step(frozen, layer, X, first, budget, split, on_chunk=check_cancel,
                         reads=mlp_reads(frozen, entering))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if end_layer == frozen.n_layers:
        return apply_norm(X, frozen.final_norm(), frozen.final_scale)
    return X


def mlp_reads(frozen: FrozenForward, entering: torch.Tensor | None) -> torch.Tensor | None:
    """The stack an MLP step reads when it is not the current one: the block's entering stack (parallel)."""
    if not frozen.adapter.parallel:
        return None
    if entering is None:
        raise AttrWidgetsError("Internal: a parallel block's MLP step needs the stack that entered the block.")
    return entering


def relative_error(total: torch.Tensor, real: torch.Tensor) -> float:
    """max over positions of ||total[q] - real[q]|| / ||real[q]||: completeness, measured per position."""
    diff = (total - real).norm(dim=-1)
    ref = real.norm(dim=-1).clamp(min=torch.finfo(real.dtype).tiny)
    return float((diff / ref).max()) if real.shape[0] else 0.0
