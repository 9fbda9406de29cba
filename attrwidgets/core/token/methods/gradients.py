"""Saliency and input x gradient: one forward, one backward per target, at the real input."""

from __future__ import annotations

import numpy as np

from attrwidgets.core.token.registry import MethodOutput, register
from attrwidgets.errors import AttrWidgetsError

AGGREGATES = ("sum", "l2")


def reduce_dims(per_dim, aggregate: str) -> np.ndarray:
    """(n, T, D) -> (n, T): signed sum over D, or its L2 norm."""
    if aggregate == "sum":
        return per_dim.sum(-1).numpy()
    if aggregate == "l2":
        return per_dim.norm(dim=-1).numpy()
    raise AttrWidgetsError(f"Unknown aggregate {aggregate!r}: use one of {', '.join(AGGREGATES)}.")


def _grads_at_input(fn):
    x = fn.embeds()
    _, grads = fn.values_and_grads(x.unsqueeze(0))
    return x, grads[0]  # (T, D), (n, T, D)


@register(
    "saliency",
    defaults={"objective": "log_prob", "per_dim": False},
    cheap=True,
    summary="||d target / d embedding||_2 per position",
)
def saliency(fn, options, progress=None) -> MethodOutput:
    _, grads = _grads_at_input(fn)
    return MethodOutput(
        scores=grads.norm(dim=-1).numpy(), per_dim=grads.numpy() if options["per_dim"] else None
    )


@register(
    "input_x_gradient",
    defaults={"objective": "log_prob", "aggregate": "sum", "per_dim": False},
    cheap=True,
    summary="embedding * gradient, summed over dimensions (signed) or its L2 norm",
)
def input_x_gradient(fn, options, progress=None) -> MethodOutput:
    x, grads = _grads_at_input(fn)
    per_dim = grads * x.float().unsqueeze(0)
    return MethodOutput(
        scores=reduce_dims(per_dim, options["aggregate"]),
        per_dim=per_dim.numpy() if options["per_dim"] else None,
    )
