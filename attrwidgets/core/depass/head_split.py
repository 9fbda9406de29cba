"""What one attention head carries to a target logit from each source token: the head's DePass contribution
split by source (docs/methods/depass.md, "A head's split by source").

The HeadGrid's number for head h of layer l comes from head-level DePass: the stack [stream, head 0..H-1,
bias] is run from layer l to the end and read through the target's unembedding row. Here head h's
component is also split by source token k (its attention weight on k times k's value, through the output
projection), and the children are carried along *inside* the parent: attention and the frozen norms are
linear, so they act on each child as on any component; at an MLP the parent's share of each neuron's
output (decided among the head-level components, exactly as in the grid) is divided among its children by
the same split rule applied to the children alone. The children's shares sum to 1, so at every layer the
children sum to the parent, and the sources' contributions sum to the head's contribution in the grid.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from attrwidgets.core.chunks import run_in_chunks
from attrwidgets.core.depass.decompose import check_index, head_seed
from attrwidgets.core.depass.propagate import half_steps, relative_error
from attrwidgets.core.depass.rules import split_rule
from attrwidgets.core.forward import ComputationCancelled
from attrwidgets.core.frozen import FrozenForward
from attrwidgets.core.frozen_ops import apply_affine, apply_norm, attention_step, default_budget, head_values


@dataclass
class HeadSplit:
    """scores[k]: what head (layer, head) carries to the logit of `target_id` at `position` from source k
    (zero after `position`); contribution: the head's whole contribution (the HeadGrid's number), which the
    scores sum to; split_error: |sum(scores) - contribution| relative to the logit's scale."""

    layer: int
    head: int
    position: int
    target_id: int
    scores: np.ndarray  # (T,)
    contribution: float
    split_error: float
    completeness_error: float  # of the head-level decomposition it refines


def source_children(frozen: FrozenForward, layer: int, head: int) -> torch.Tensor:
    """(T + 1, T, D): row 0 a zero row that takes the biases the propagation adds (the children carry none),
    row 1 + k head `head`'s write at every query through source k (value biases are the bias component's, as
    in the head split)."""
    rec = frozen.blocks[layer]
    h = rec.x_in
    stack = torch.stack([torch.zeros_like(h), h])
    v = head_values(frozen, layer, apply_norm(stack, frozen.norm_attn(layer), rec.scale_attn))[1]  # (T, KV, hd)
    H, hd = frozen.n_heads, frozen.head_dim
    v_head = v[:, head // (H // v.shape[1])]  # (T, hd): query head h reads key/value head h // (H / KV)
    w = frozen.out_map(layer).weight.view(-1, H, hd)[:, head]  # (D, hd)
    written = v_head @ w.t()  # (T, D): source k's value, written out
    weights = rec.attention[head]  # (T queries, T keys)
    children = weights.t().unsqueeze(-1) * written.unsqueeze(1)  # (k, q, D)
    if rec.post_attn is not None:  # the frozen post-norm at each query (Gemma, OLMo 2)
        children = children * rec.post_attn
    return torch.cat([torch.zeros_like(children[:1]), children])


def _mlp_step(frozen: FrozenForward, layer: int, X: torch.Tensor, C: torch.Tensor, parent: int, split,
              budget: int, entering: tuple | None) -> None:
    """X += the MLP output split among its components (as mlp_step does); C += the parent's part, split among
    its children by the rule applied to them alone (in place). entering: (X, C) as they entered the block,
    which the MLP reads where it runs in parallel with attention (GPT-NeoX)."""
    rec = frozen.blocks[layer]
    norm, scale = frozen.norm_mlp(layer), rec.scale_mlp
    read_x, read_c = entering if frozen.adapter.parallel else (X, C)
    normed, normed_c = apply_norm(read_x, norm, scale), apply_norm(read_c, norm, scale)
    in_map, out_map = frozen.mlp_in_map(layer), frozen.mlp_out_map(layer)
    n_neurons = in_map.weight.shape[0]

    def chunk(t0: int, t1: int) -> None:
        g = apply_affine(in_map, normed[:, t0:t1], with_bias=False)
        if in_map.bias is not None:
            g[0] += in_map.bias
        part = split(g, rec.preact[t0:t1]) * rec.values[t0:t1]  # (M, c, I): each component's neuron outputs
        out = apply_affine(out_map, part, with_bias=False)
        if out_map.bias is not None:
            out[0] += out_map.bias
        g_c = apply_affine(in_map, normed_c[1:, t0:t1], with_bias=False)  # the children's own pre-activations
        within = split(torch.cat([torch.zeros_like(g_c[:1]), g_c]), g[parent])[1:]  # row 0: none of theirs
        total = within.sum(0, keepdim=True)
        # Shares among the children sum to 1; where no child reaches a neuron, an equal split keeps that.
        within = torch.where(total > 0, within / total.clamp(min=torch.finfo(g.dtype).tiny),
                             torch.full_like(within, 1.0 / within.shape[0]))
        out_c = apply_affine(out_map, within * part[parent], with_bias=False)
        if rec.post_mlp is not None:  # the frozen post-norm, a diagonal map per position
            out, out_c = out * rec.post_mlp[t0:t1], out_c * rec.post_mlp[t0:t1]
        X[:, t0:t1] += out
        C[1:, t0:t1] += out_c

    per_position = 4 * (X.shape[0] + C.shape[0]) * (3 * n_neurons + X.shape[2])
    run_in_chunks(X.shape[1], max(1, budget // max(1, per_position)), chunk)


def head_split_at(frozen: FrozenForward, layer: int, head: int, position: int, target_id: int, *,
                  mlp_rule: str = "softmax", temperature: float = 0.1, budget: int | None = None,
                  cancel: threading.Event | None = None) -> HeadSplit:
    """Head `head` of `layer`'s contribution to the logit of `target_id` at `position`, split by source token.
    `frozen` may be cut to position + 1 (later positions cannot matter)."""
    split = split_rule(mlp_rule, temperature)
    layer = check_index("layer", layer, frozen.n_layers)
    head = check_index("head", head, frozen.n_heads)
    budget = default_budget(frozen.blocks[layer].x_in.device) if budget is None else int(budget)
    seed = head_seed(frozen, layer)
    X, parent = seed.X.clone(), 2 + head  # propagation order: bias, stream, head 0..H-1
    C = source_children(frozen, layer, head)
    T = X.shape[1]
    first_c = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(T)]).to(seed.first.device)
    entering = (seed.entering(), torch.zeros_like(C))  # the head's parts came out of the attention
    for step_layer, kind in half_steps(layer, "mid", frozen.n_layers):
        if cancel is not None and cancel.is_set():
            raise ComputationCancelled("Computation cancelled: a newer request replaced it.")
        if kind == "attn":
            entering = (X.clone(), C.clone()) if frozen.adapter.parallel else None
            attention_step(frozen, step_layer, X, seed.first, budget)
            attention_step(frozen, step_layer, C, first_c, budget)
        else:
            _mlp_step(frozen, step_layer, X, C, parent, split, budget, entering)
    final = frozen.final_norm()
    X, C = apply_norm(X, final, frozen.final_scale), apply_norm(C, final, frozen.final_scale)
    # Gemma 2's final soft-cap, frozen as a scale of this logit (as in the head contributions).
    row = frozen.unembedding().weight[target_id] * float(frozen.logit_scale(position)[target_id])
    scores = (C[1:, position] @ row).cpu()
    contribution = float(X[parent, position] @ row)
    scale = max(float(frozen.real_logits(position).abs().max()), float(torch.finfo(torch.float32).tiny))
    return HeadSplit(layer=layer, head=head, position=position, target_id=int(target_id),
                     scores=scores.numpy().astype(np.float32), contribution=contribution,
                     split_error=abs(float(scores.sum()) - contribution) / scale,
                     completeness_error=relative_error(X.sum(0), frozen.final_out))
