"""Independent computations for the attribution-graph tests: random transcoders, and the frozen local
replacement model run FORWARD (frozen_ops' attention and norms, the transcoder itself), never through the
backward sweep that builds the adjacency."""

from __future__ import annotations

import torch

from attrwidgets.core.frozen_ops import apply_norm, attention_step
from attrwidgets.core.graph.transcoder import Transcoder


def random_transcoder(n_layers: int, d_model: int, n_features: int = 24, *, kind: str = "plt",
                      activation: str = "jumprelu", skip: bool = False, seed: int = 0) -> Transcoder:
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    L, D, F = n_layers, d_model, n_features
    W_dec = [rand(F, D, scale=0.02) if kind == "plt" else rand(F, L - layer, D, scale=0.02) for layer in range(L)]
    return Transcoder(
        kind=kind, activation=activation,
        W_enc=[rand(F, D, scale=D ** -0.5 * 3) for _ in range(L)], b_enc=[rand(F, scale=0.1) for _ in range(L)],
        W_dec=W_dec, b_dec=[rand(D, scale=0.05) for _ in range(L)],
        threshold=[rand(F, scale=0.1).abs() for _ in range(L)] if activation == "jumprelu" else None,
        W_skip=[rand(D, D, scale=0.02) for _ in range(L)] if skip else None,
        top_k=4 if activation == "topk" else None,
    )


def source_writes(rep, column: int) -> list[tuple[int, str, int, torch.Tensor]]:
    """What one source writes, from the transcoder and the records (not from rep.writes): (layer, site, pos, v)."""
    cols = rep.columns()
    kind, layer, pos, feat = (int(cols[k][column]) for k in ("kind", "layer", "position", "feature"))
    f = rep.frozen
    if kind == 2:  # token
        return [(0, "in", pos, f.blocks[0].x_in[pos])]
    if kind == 1:  # error
        return [(layer, "out", pos, rep.errors[layer][pos])]
    if kind == 0:
        tc = rep.transcoder
        out_layers = range(layer, f.n_layers) if tc.kind == "clt" else (layer,)
        act = rep.acts[layer][pos, feat]
        return [(k, "out", pos, tc.decoder(layer, k)[feat] * act) for k in out_layers]
    raise ValueError(kind)


def transcoder_forward(rep, logit_directions: torch.Tensor, extra=()):
    """Run the frozen replacement model forward with `extra` writes added: -> (pre-activations of every
    feature candidate column, demeaned logits along logit_directions at the last position)."""
    f, tc, L, T = rep.frozen, rep.transcoder, rep.n_layers, rep.length
    x = f.blocks[0].x_in.clone()
    for layer, site, pos, v in extra:
        if (layer, site) == (0, "in"):
            x[pos] += v
    pre = []
    first = torch.zeros(1, dtype=torch.long)
    for layer in range(L):
        X = x.unsqueeze(0).clone()
        attention_step(f, layer, X, first, budget=1 << 30)
        mid = X[0]
        reads = x if f.adapter.parallel else mid  # GPT-NeoX: the MLP reads the block input
        normed = apply_norm(reads.unsqueeze(0).clone(), f.norm_mlp(layer), f.blocks[layer].scale_mlp)[0]
        pre.append(tc.encode(layer, normed))
        inputs = [normed if k == layer else rep.inputs[k] for k in range(L)]
        out = tc.reconstruct(rep.acts, inputs, layer) + rep.errors[layer]  # features are nodes: acts fixed
        for k, site, pos, v in extra:
            if (k, site) == (layer, "out"):
                out[pos] += v
        x = mid + out
    final = apply_norm(x.unsqueeze(0).clone(), f.final_norm(), f.final_scale)[0]
    cols = rep.columns()
    n = rep.n_target_candidates
    pre = torch.stack(pre)[cols["layer"][:n], cols["position"][:n], cols["feature"][:n]]
    return pre, logit_directions @ final[T - 1]


def component_writes(rep, column: int) -> list[tuple[int, str, int, torch.Tensor]]:
    """A component or token source's write, from the records and frozen_ops (not from rep.writes)."""
    from attrwidgets.core.frozen_ops import head_outputs

    cols = rep.columns()
    kind, layer, pos, head = (int(cols[k][column]) for k in ("kind", "layer", "position", "feature"))
    f = rep.frozen
    if kind == 2:
        return [(0, "in", pos, f.blocks[0].x_in[pos])]
    if kind == 5:  # mlp
        return [(layer, "out", pos, f.blocks[layer].mlp_out[pos])]
    x = f.blocks[layer].x_in
    per_head, _ = head_outputs(f, layer, torch.stack([torch.zeros_like(x), x]))
    return [(layer, "mid", pos, per_head.sum(0)[pos, head])]


def component_forward(rep, logit_directions: torch.Tensor, extra=()):
    """Forward with every head and MLP output fixed at its real value (they are nodes), `extra` added; each
    component's scalar u . out recomputed from the stream it reads. -> (scalars of candidates, logits)."""
    from attrwidgets.core.frozen_ops import head_outputs
    from attrwidgets.core.graph.component_graph import UNGATED, frozen_gates, unit

    f, L, T = rep.frozen, rep.n_layers, rep.length
    cols = rep.columns()
    x = f.blocks[0].x_in.clone()
    values = torch.zeros(rep.n_target_candidates)

    def add(x, layer, site):
        for k, s, pos, v in extra:
            if (k, s) == (layer, site):
                x[pos] += v
        return x

    x = add(x, 0, "in")
    for layer in range(L):
        rec = f.blocks[layer]
        per_head, _ = head_outputs(f, layer, torch.stack([torch.zeros_like(x), x]))
        heads_now = per_head.sum(0)  # (T, H, D)
        mid = add(x + rec.attn_out, layer, "mid")
        reads = x if f.adapter.parallel else mid  # GPT-NeoX: the MLP reads the block input
        normed = apply_norm(reads.unsqueeze(0).clone(), f.norm_mlp(layer), rec.scale_mlp)[0]
        w_in, gates, w_out = frozen_gates(f, layer)
        mlp_map = f.mlp_in_map(layer)
        z = normed @ w_in.t() + (mlp_map.bias if f.adapter.name in UNGATED and mlp_map.bias is not None else 0)
        mlp_now = (gates * z) @ w_out.t()
        if f.mlp_out_map(layer).bias is not None:
            mlp_now = mlp_now + f.mlp_out_map(layer).bias
        if rec.post_mlp is not None:  # Gemma, OLMo 2: the frozen post-norm
            mlp_now = mlp_now * rec.post_mlp
        heads_real = head_outputs(f, layer, torch.stack([torch.zeros_like(rec.x_in), rec.x_in]))[0].sum(0)
        for c in (cols["layer"][: rep.n_target_candidates] == layer).nonzero(as_tuple=True)[0].tolist():
            q, h, kind = int(cols["position"][c]), int(cols["feature"][c]), int(cols["kind"][c])
            real = rec.mlp_out[q] if kind == 5 else heads_real[q, h]
            now = mlp_now[q] if kind == 5 else heads_now[q, h]
            values[c] = unit(real) @ now
        x = add(mid + rec.mlp_out, layer, "out")
    final = apply_norm(x.unsqueeze(0).clone(), f.final_norm(), f.final_scale)[0]
    return values, logit_directions @ final[T - 1]
