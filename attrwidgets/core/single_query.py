"""One block evaluated for ONE query position per batch row: what a per-target objective needs, at a
fraction of the cost of the whole block.

A target j's block output reads attention at query j only and the MLP at position j only; keys and
values still come from every position. So each batch row n runs, for its own position j_n:
the model's own norm and q/k/v projections (q at j_n only; its q/k norms where it has them), its own rotary function, its own eager
attention function with the mask row j_n, its own output projection and MLP on a length-1 sequence.
Only the gathering of that single query is written here; tests check every function against the full
block (core/boundaries.py), which replays the model's forward unchanged.

LIG uses it for z->z (block output at j) and z->u (head writes at j): 4-5x fewer FLOPs on BERT-size
blocks, more on grouped-query models, whose key/value projections are narrow.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from attrwidgets.core.boundaries import Boundaries
from attrwidgets.core.frozen import fused_qkv_rows


def _core(b: Boundaries, layer: int):
    attn = b.module("attn", layer)
    return attn.self if hasattr(attn, "self") else attn  # BERT nests q/k/v one level down


def _rows(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x (N, T, ...) -> (N, 1, ...): row n at position positions[n]."""
    return x[torch.arange(x.shape[0], device=x.device), positions].unsqueeze(1)


def _mask_row(b: Boundaries, layer: int, positions: torch.Tensor, dtype) -> torch.Tensor | None:
    """The additive mask of query positions[n] over all keys, (N, 1, 1, T), from the mask the model built."""
    mask = b.block_kwargs[layer].get("attention_mask")
    t = b.length
    if isinstance(mask, torch.Tensor) and mask.dim() == 4:
        row = mask[0, 0, positions] if mask.shape[2] > 1 else mask[0, 0, 0].expand(len(positions), t)
        if row.dtype == torch.bool:
            row = torch.where(row, 0.0, torch.finfo(dtype).min).to(dtype)
        return row.to(dtype).view(len(positions), 1, 1, t)
    if not b.adapter.causal:
        return None
    keys = torch.arange(t, device=positions.device)
    blocked = keys.unsqueeze(0) > positions.unsqueeze(1)
    return torch.where(blocked, torch.finfo(dtype).min, 0.0).to(dtype).view(len(positions), 1, 1, t)


def _projections(b: Boundaries, layer: int, x: torch.Tensor, positions: torch.Tensor):
    """q at positions (N, H, 1, hd) and k, v everywhere (N, KV, T, hd), rotary applied as the model does."""
    a, core = b.adapter, _core(b, layer)
    head_dim = int(getattr(core, "head_dim", None) or getattr(core, "head_size", None) or core.attention_head_size)
    n, t, _ = x.shape
    x_q = _rows(x, positions)
    if a.qkv_fused is not None:  # GPT-2, Phi-3, GPT-NeoX: one projection for q, k and v
        fused = b.module("qkv_fused", layer)
        weight, bias = fused.weight, fused.bias
        if type(fused).__name__ == "Conv1D":  # GPT-2 stores it (in, out)
            weight = weight.t()
        q_rows, k_rows, v_rows = (r.to(weight.device) for r in fused_qkv_rows(a, b.model.config, weight.shape[0]))
        kv_rows = torch.cat([k_rows, v_rows])
        # Queries at the one position only, keys and values everywhere: the fused weight's own rows.
        q = F.linear(x_q, weight[q_rows], None if bias is None else bias[q_rows])
        kv = F.linear(x, weight[kv_rows], None if bias is None else bias[kv_rows])
        k, v = kv[..., :len(k_rows)], kv[..., len(k_rows):]
    else:
        q, k, v = b.module("q_proj", layer)(x_q), b.module("k_proj", layer)(x), b.module("v_proj", layer)(x)
    q, k = _qk_norm(core, "q_norm", q, head_dim), _qk_norm(core, "k_norm", k, head_dim)
    q = q.view(n, 1, -1, head_dim).transpose(1, 2)
    k = k.view(n, t, -1, head_dim).transpose(1, 2)
    v = v.view(n, t, -1, head_dim).transpose(1, 2)
    rotary = b.block_kwargs[layer].get("position_embeddings")
    if rotary is not None:
        rotate = sys.modules[type(core).__module__].apply_rotary_pos_emb
        cos, sin = rotary
        k = rotate(k, k, cos, sin)[0]
        q = rotate(q, q, cos[0, positions].unsqueeze(1), sin[0, positions].unsqueeze(1))[0]
    return q, k, v


def _qk_norm(core, name: str, x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """The attention's own norm of its queries or keys (Qwen3: per head, over head_dim), where it has one."""
    norm = getattr(core, name, None)
    if norm is None:
        return x
    if norm.weight.shape[-1] == head_dim:  # per head: on (..., heads, head_dim), as the model does
        return norm(x.view(*x.shape[:-1], -1, head_dim)).view(x.shape)
    return norm(x)  # over the whole projection


def context_at(b: Boundaries, layer: int, z: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The attention context (input of the output projection) at query positions[n] of block inputs z
    (N, T, D): (N, 1, H * head_dim)."""
    core = _core(b, layer)
    x = z if b.adapter.post_norm else b.norm("norm_attn", layer, z)
    q, k, v = _projections(b, layer, x, positions)
    attend = sys.modules[type(core).__module__].eager_attention_forward
    # Gemma 2 caps its attention scores inside that function (softcap=); the others take no such argument.
    cap = getattr(core, "attn_logit_softcapping", None)
    out, _ = attend(core, q, k, v, _mask_row(b, layer, positions, q.dtype), scaling=core.scaling, dropout=0.0,
                    **({"softcap": cap} if cap else {}))
    return out.reshape(z.shape[0], 1, -1)


def head_writes_at(b: Boundaries, layer: int, z: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Each head's write (its context slice through the output projection) at positions[n]: (N, H, D)."""
    context = context_at(b, layer, z, positions)[:, 0]
    o_proj = b.module("o_proj", layer)
    weight = o_proj.weight.t() if type(o_proj).__name__ == "Conv1D" else o_proj.weight  # (D, H * hd)
    heads = b.n_heads
    per_head = context.view(context.shape[0], heads, -1)
    return torch.einsum("nhe,dhe->nhd", per_head, weight.view(weight.shape[0], heads, -1))


def block_output_at(b: Boundaries, layer: int, z: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Block `layer`'s output at positions[n] of block inputs z (N, T, D): (N, D)."""
    context = context_at(b, layer, z, positions)
    z_j = _rows(z, positions)
    if b.adapter.post_norm:  # BERT: LayerNorm(dense(context) + z_j), then the MLP sublayer
        mid = b.module("attn", layer).output(context, z_j)
    else:
        written = b.module("o_proj", layer)(context)
        mid = z_j + (b.module("post_norm_attn", layer)(written) if b.adapter.post_norm_attn else written)
    return b.run_tail(layer, mid, reads=z_j if b.adapter.parallel else None)[:, 0]
