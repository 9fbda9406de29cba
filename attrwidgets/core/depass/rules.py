"""MLP split rules: how a neuron's real output is shared among the components (docs/methods/depass.md).

g (M, c, I): component m's contribution to neuron i's pre-activation at each of c positions (the bias
component first, as inside every propagation); g_real (c, I): the real pre-activation. Each rule returns shares (M, c, I) that sum to 1
over components, so the split is exact. Pinned details: a component with g == 0 exactly takes no share
(the softmax mask is exact because every component is built from its own terms); a neuron that no
component reaches goes to the bias component.
"""

from __future__ import annotations

from functools import partial

import torch

from attrwidgets.errors import AttrWidgetsError

MLP_RULES = ("softmax", "max", "linear", "relu", "taylor")


def _unreached_to_bias(shares: torch.Tensor, reached: torch.Tensor) -> torch.Tensor:
    shares = torch.where(reached, shares, torch.zeros_like(shares))
    shares[0] += (~reached).to(shares.dtype)
    return shares


def softmax_shares(g: torch.Tensor, g_real: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Softmax of g / temperature over the components with g != 0 (in place, few passes: this is the
    default rule and runs on (components x positions x neurons) per layer)."""
    e = torch.where(g != 0, g, float("-inf"))
    top = e.amax(0, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # unreached neurons: all -inf
    e.sub_(top).mul_(1.0 / temperature).exp_()
    total = e.sum(0, keepdim=True)
    e.div_(total.clamp(min=torch.finfo(e.dtype).tiny))
    e[0] += (total[0] == 0).to(e.dtype)  # a neuron no component reaches goes to the bias component
    return e


def max_shares(g: torch.Tensor, g_real: torch.Tensor) -> torch.Tensor:
    """The whole output to the component with the largest g among those with g != 0 (ties: the first)."""
    mask = g != 0
    winner = g.masked_fill(~mask, float("-inf")).argmax(0, keepdim=True)
    shares = torch.zeros_like(g).scatter_(0, winner, 1.0)
    return _unreached_to_bias(shares, mask.any(0))


def linear_shares(g: torch.Tensor, g_real: torch.Tensor) -> torch.Tensor:
    """(g[m] - min g) / sum over the components with g != 0; equal shares when they are all equal."""
    mask = g != 0
    low = g.masked_fill(~mask, float("inf")).amin(0, keepdim=True)
    shifted = torch.where(mask, g - low, torch.zeros_like(g))
    total = shifted.sum(0, keepdim=True)
    equal = mask.to(g.dtype) / mask.sum(0, keepdim=True).clamp(min=1)
    shares = torch.where(total > 0, shifted / total.clamp(min=torch.finfo(g.dtype).tiny), equal)
    return _unreached_to_bias(shares, mask.any(0))


def relu_shares(g: torch.Tensor, g_real: torch.Tensor) -> torch.Tensor:
    """relu(g[m]) / sum relu(g); the linear rule where no component is positive.

    Upstream DePass drops such a neuron's output (it has no positive component); with the linear fallback
    pinned in docs/methods/depass.md nothing is lost, and completeness_error would show it if it were.
    """
    positive = g.clamp(min=0)
    total = positive.sum(0, keepdim=True)
    shares = torch.where(total > 0, positive / total.clamp(min=torch.finfo(g.dtype).tiny), linear_shares(g, g_real))
    return shares


def taylor_shares(g: torch.Tensor, g_real: torch.Tensor) -> torch.Tensor:
    """First order: g[m] / g_real (the real pre-activation); a neuron with g_real == 0 goes to the bias."""
    nonzero = g_real != 0
    shares = g / torch.where(nonzero, g_real, torch.ones_like(g_real))
    return _unreached_to_bias(shares, nonzero.expand_as(g[0]))


def split_rule(name: str, temperature: float = 0.1):
    if name not in MLP_RULES:
        raise AttrWidgetsError(f"Unknown mlp_rule {name!r}: use one of {', '.join(MLP_RULES)}.")
    if name == "softmax":
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not temperature > 0:
            raise AttrWidgetsError(f"temperature must be a positive number, got {temperature!r}.")
        return partial(softmax_shares, temperature=float(temperature))
    return {"max": max_shares, "linear": linear_shares, "relu": relu_shares, "taylor": taylor_shares}[name]
