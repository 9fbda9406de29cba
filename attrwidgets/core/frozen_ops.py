"""Linear propagation of a component stack through a frozen forward (core/frozen.py).

A stack X has shape (M, T, D); sum over M is the real residual stream. Inside the propagation the bias
component is FIRST (index 0) and components are ordered by `first` (M,), ascending: the first position
where each can be non-zero (position k for token k's component, 0 for all others). With causal attention
a component stays exactly zero before its first position, so a chunk of positions [t0, t1) needs only the
components with first < t1, and those are a prefix of the stack: a view, not a copy. For token-level
DePass this skips about half the work; for other levels every component is active. (The public results
put the bias component last; core/depass/decompose.py reorders.)

Work is chunked over positions to a memory budget (attention: queries; MLP: positions), never over
components, because an MLP split rule compares all components of a position at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from attrwidgets.core.chunks import run_in_chunks
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


CAUSAL_CHUNKS = 8  # position chunks at least, where components start late (token level): skips ~45% of work


def chunk_positions(first: torch.Tensor, length: int, bytes_per_cell: int, budget: int) -> int:
    """How many positions one chunk may cover in the budget."""
    size = max(1, budget // max(1, bytes_per_cell * int(first.numel())))
    if int(first[-1]) > 0:
        size = min(size, -(-length // CAUSAL_CHUNKS))
    return size


def over_position_chunks(first: torch.Tensor, length: int, bytes_per_cell: int, budget: int,
                         run: Callable[[int, int, int], None], on_chunk: Callable[[], None] | None = None) -> None:
    """run(t0, t1, n_active) over chunks covering 0..length-1: components [0, n_active) may be non-zero there.
    `run` writes its chunk only once it is computed, so a chunk that runs out of device memory is retried at
    half the size (core/chunks.py) and every number stays the same."""

    def one_chunk(t0: int, t1: int) -> None:
        if on_chunk is not None:
            on_chunk()
        run(t0, t1, int(torch.searchsorted(first, t1)))

    run_in_chunks(length, chunk_positions(first, length, bytes_per_cell, budget), one_chunk)


def apply_norm(X: torch.Tensor, spec: NormSpec, scale: torch.Tensor) -> torch.Tensor:
    """Frozen norm on every component: the real state's scale, LayerNorm's centring per component, its
    offset to the bias component (index 0). No norm there ("none"): the stack itself, not a copy."""
    if spec.kind == "none":
        return X
    if spec.kind == "layer":
        X = X - X.mean(-1, keepdim=True)
    Y = X * (scale.unsqueeze(1) * spec.weight)  # one pass over the stack: (T, D) factor broadcast over M
    if spec.bias is not None:
        Y[0] += spec.bias
    return Y


def apply_affine(affine: Affine, x: torch.Tensor, with_bias: bool) -> torch.Tensor:
    # One 2-D matmul: a strided 3-D view (a chunk of positions) would otherwise go through a batched
    # matmul with the weight broadcast, measured 3x slower.
    y = (x.reshape(-1, x.shape[-1]) @ affine.weight.t()).view(*x.shape[:-1], -1)
    return y + affine.bias if with_bias and affine.bias is not None else y


def head_values(frozen: FrozenForward, layer: int, normed: torch.Tensor) -> torch.Tensor:
    """(M, T, D) normed stack -> (M, T, KV, hd) per key/value head; the value bias goes to the bias component."""
    value_map = frozen.value_map(layer)
    v = apply_affine(value_map, normed, with_bias=False)
    if value_map.bias is not None:
        v[0] += value_map.bias
    return v.view(v.shape[0], v.shape[1], frozen.n_kv_heads, frozen.head_dim)


def keys_major(v: torch.Tensor) -> torch.Tensor:
    """(M, T, KV, hd) values -> (KV, T, M * hd): every chunk's (keys, components) block is then a strided
    view that a batched matmul reads as it is (the active components are a prefix of M)."""
    M, T, kv, hd = v.shape
    return v.permute(2, 1, 0, 3).reshape(kv, T, M * hd)


def grouped_attention(attention: torch.Tensor, vt: torch.Tensor, n: int, hd: int, t0: int, t1: int) -> torch.Tensor:
    """Context vectors (n, t1 - t0, H * hd) of queries t0..t1-1 for components [0, n), from keys_major values.
    Query heads sharing a key/value head (GQA) read it in one product, without a repeated copy."""
    H, kv, c = attention.shape[0], vt.shape[0], t1 - t0
    a = attention[:, t0:t1, :t1].reshape(kv, (H // kv) * c, t1)  # query head h = g * (H // kv) + j
    ctx = torch.bmm(a, vt[:, :t1, : n * hd])  # (kv, j * c, n * hd)
    return ctx.view(kv, H // kv, c, n, hd).permute(3, 2, 0, 1, 4).reshape(n, c, H * hd)


def attention_step(frozen: FrozenForward, layer: int, X: torch.Tensor, first: torch.Tensor, budget: int,
                   on_chunk: Callable[[], None] | None = None) -> None:
    """X += attention output of layer `layer`, per component (in place)."""
    rec = frozen.blocks[layer]
    v = head_values(frozen, layer, apply_norm(X, frozen.norm_attn(layer), rec.scale_attn))
    out_map = frozen.out_map(layer)
    T, H = X.shape[1], frozen.n_heads
    bytes_per_cell = 4 * (2 * H * frozen.head_dim + X.shape[2] + T * H)  # context, output, keys per query
    vt = keys_major(v)

    def chunk(t0: int, t1: int, n: int) -> None:
        ctx = grouped_attention(rec.attention, vt, n, frozen.head_dim, t0, t1)
        out = apply_affine(out_map, ctx, with_bias=False)
        if out_map.bias is not None:
            out[0] += out_map.bias
        if rec.post_attn is not None:  # the frozen post-norm: a diagonal map per position
            out *= rec.post_attn[t0:t1]
        X[:n, t0:t1] += out

    over_position_chunks(first, T, bytes_per_cell, budget, chunk, on_chunk)


def head_outputs(frozen: FrozenForward, layer: int, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-head attention outputs of a small stack as added to the stream: (M, T, H, D) without the output
    bias, and that bias ((D,), or (T, D) through a post-norm). With a post-norm each head's share is its write
    through the frozen norm, so the shares still sum to the attention output."""
    rec = frozen.blocks[layer]
    v = head_values(frozen, layer, apply_norm(X, frozen.norm_attn(layer), rec.scale_attn))
    M, T, _, hd = v.shape
    ctx = grouped_attention(rec.attention, keys_major(v), M, hd, 0, T).view(M, T, -1, hd)  # (M, T, H, hd)
    out_map = frozen.out_map(layer)
    H = ctx.shape[2]
    w = out_map.weight.view(-1, H, hd)  # (D, H, hd)
    per_head, bias = torch.einsum("mqhd,ehd->mqhe", ctx, w), out_map.bias
    if rec.post_attn is not None:
        per_head = per_head * rec.post_attn[:, None]
        bias = None if bias is None else bias * rec.post_attn
    return per_head, bias


def mlp_step(frozen: FrozenForward, layer: int, X: torch.Tensor, first: torch.Tensor, budget: int,
             split: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
             on_chunk: Callable[[], None] | None = None, reads: torch.Tensor | None = None) -> None:
    """X += MLP output of layer `layer`, each neuron's real output split among components by `split`.

    reads: the stack the MLP reads where that is not X itself: the stack as it entered the block, for a
    model whose attention and MLP run in parallel (GPT-NeoX).

    split(g, g_real) takes the components' contributions g (Ma, c, I) to the neurons' pre-activations (the
    bias component first) and the real pre-activations (c, I); it returns shares (Ma, c, I) that sum to 1.
    """
    rec = frozen.blocks[layer]
    normed = apply_norm(X if reads is None else reads, frozen.norm_mlp(layer), rec.scale_mlp)
    in_map, out_map = frozen.mlp_in_map(layer), frozen.mlp_out_map(layer)
    n_neurons = in_map.weight.shape[0]
    bytes_per_cell = 4 * (4 * n_neurons + X.shape[2])

    def chunk(t0: int, t1: int, n: int) -> None:
        g = apply_affine(in_map, normed[:n, t0:t1], with_bias=False)
        if in_map.bias is not None:
            g[0] += in_map.bias
        shares = split(g, rec.preact[t0:t1])
        shares *= rec.values[t0:t1]
        out = apply_affine(out_map, shares, with_bias=False)
        if out_map.bias is not None:
            out[0] += out_map.bias
        if rec.post_mlp is not None:
            out *= rec.post_mlp[t0:t1]
        X[:n, t0:t1] += out

    over_position_chunks(first, X.shape[1], bytes_per_cell, budget, chunk, on_chunk)
