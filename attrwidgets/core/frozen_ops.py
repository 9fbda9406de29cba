"""Linear propagation of a component stack through a frozen forward (core/frozen.py).

A stack X has shape (M, T, D); sum over M is the real residual stream; the LAST component is the bias
component. `first` (M,) is, per component, the first position where it can be non-zero (position k for
token k's component, 0 for others): with causal attention a component stays exactly zero before it, so
work on a chunk of positions [t0, t1) touches only the components with first < t1. For token-level DePass
this halves the work; for other levels every component is active.

Work is chunked over positions to a memory budget (attention: queries; MLP: positions), never over
components, because an MLP split rule compares all components of a position at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from attrwidgets.core.frozen import Affine, FrozenForward, NormSpec


def default_budget(device: torch.device) -> int:
    """Bytes one chunk's temporaries may take: half the free GPU memory, or a quarter of free RAM (<= 4 GiB)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        free = 8 << 30
    return int(min(free // 4, 4 << 30))


def position_chunks(first: torch.Tensor, length: int, bytes_per_cell: int, budget: int):
    """Yield (t0, t1, active component indices) covering 0..length-1, each chunk within the budget."""
    n_active_max = int(first.numel())
    start = 0
    while start < length:
        # active components grow with t1 (token level): size the chunk for the worst case inside it
        size = max(1, budget // max(1, bytes_per_cell * n_active_max))
        stop = min(length, start + size)
        active = (first < stop).nonzero().squeeze(1)
        yield start, stop, active
        start = stop


def apply_norm(X: torch.Tensor, spec: NormSpec, scale: torch.Tensor) -> torch.Tensor:
    """Frozen norm on every component: the real state's scale, LayerNorm's centring per component, its
    offset to the bias component (last)."""
    if spec.kind == "layer":
        X = X - X.mean(-1, keepdim=True)
    Y = X * scale.view(1, -1, 1) * spec.weight
    if spec.bias is not None:
        Y[-1] += spec.bias
    return Y


def _apply(affine: Affine, x: torch.Tensor, with_bias: bool) -> torch.Tensor:
    y = x @ affine.weight.t()
    return y + affine.bias if with_bias and affine.bias is not None else y


def head_values(frozen: FrozenForward, layer: int, normed: torch.Tensor) -> torch.Tensor:
    """(M, T, D) normed stack -> (M, T, H, hd) per query head; the value bias goes to the bias component."""
    v = _apply(frozen.value_map(layer), normed, with_bias=False)
    bias = frozen.value_map(layer).bias
    if bias is not None:
        v[-1] += bias
    M, T = v.shape[:2]
    v = v.view(M, T, frozen.n_kv_heads, frozen.head_dim)
    kv_of_head = torch.arange(frozen.n_heads, device=v.device) // (frozen.n_heads // frozen.n_kv_heads)
    return v[:, :, kv_of_head]


def attention_step(frozen: FrozenForward, layer: int, X: torch.Tensor, first: torch.Tensor, budget: int,
                   on_chunk: Callable[[], None] | None = None) -> None:
    """X += attention output of layer `layer`, per component (in place)."""
    rec = frozen.blocks[layer]
    v = head_values(frozen, layer, apply_norm(X, frozen.norm_attn(layer), rec.scale_attn))
    out_map = frozen.out_map(layer)
    _, T, H, hd = v.shape
    bytes_per_cell = 4 * (2 * H * hd + X.shape[2] + T * H)  # ctx, output, and the sliced keys per query
    for t0, t1, active in position_chunks(first, T, bytes_per_cell, budget):
        if on_chunk is not None:
            on_chunk()
        ctx = torch.einsum("hqk,mkhd->mqhd", rec.attention[:, t0:t1, :t1], v[active, :t1])
        out = _apply(out_map, ctx.reshape(len(active), t1 - t0, H * hd), with_bias=False)
        if out_map.bias is not None:
            out[-1] += out_map.bias
        X[active, t0:t1] += out


def head_outputs(frozen: FrozenForward, layer: int, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-head attention outputs of a small stack: (M, T, H, D) without the output bias, and that bias."""
    rec = frozen.blocks[layer]
    v = head_values(frozen, layer, apply_norm(X, frozen.norm_attn(layer), rec.scale_attn))
    ctx = torch.einsum("hqk,mkhd->mqhd", rec.attention, v)  # (M, T, H, hd)
    out_map = frozen.out_map(layer)
    H, hd = ctx.shape[2:]
    w = out_map.weight.view(-1, H, hd)  # (D, H, hd)
    return torch.einsum("mqhd,ehd->mqhe", ctx, w), out_map.bias


def mlp_step(frozen: FrozenForward, layer: int, X: torch.Tensor, first: torch.Tensor, budget: int,
             split: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
             on_chunk: Callable[[], None] | None = None) -> None:
    """X += MLP output of layer `layer`, each neuron's real output split among components by `split`.

    split(g, g_real) takes the components' contributions g (Ma, c, I) to the neurons' pre-activations and
    the real pre-activations (c, I), and returns shares (Ma, c, I) that sum to 1 over components.
    """
    rec = frozen.blocks[layer]
    normed = apply_norm(X, frozen.norm_mlp(layer), rec.scale_mlp)
    in_map, out_map = frozen.mlp_in_map(layer), frozen.mlp_out_map(layer)
    n_neurons = in_map.weight.shape[0]
    bytes_per_cell = 4 * (4 * n_neurons + X.shape[2])
    for t0, t1, active in position_chunks(first, X.shape[1], bytes_per_cell, budget):
        if on_chunk is not None:
            on_chunk()
        g = _apply(in_map, normed[active, t0:t1], with_bias=False)
        if in_map.bias is not None:
            g[-1] += in_map.bias
        shares = split(g, rec.preact[t0:t1])
        out = _apply(out_map, shares * rec.values[t0:t1], with_bias=False)
        if out_map.bias is not None:
            out[-1] += out_map.bias
        X[active, t0:t1] += out
