"""graph.intervene({node_id: new_activation}): set or ablate nodes and see the output change.

frozen=True runs the local replacement model forward with attention patterns and norm scales frozen at their
values on the prompt (core/frozen_ops.py): transcoder graphs recompute every feature from its layer's input
(JumpReLU and all), errors fixed; component graphs recompute heads through the frozen patterns and MLPs through
their frozen gates, each keeping only its change along its own real direction (the component graph's nodes are
those scalars; the rest stays fixed like an error). frozen=False runs the real model (attention and norms recomputed) with the MLPs replaced by
transcoder + fixed error, or with the chosen heads' / MLPs' outputs forced. With no interventions both
reproduce the prompt's logits. New values: a feature's activation; an error, head or MLP node's length along
its own real direction (0 ablates).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from attrwidgets.core.adapters import soft_capped
from attrwidgets.core.frozen_ops import apply_norm, attention_step, head_outputs
from attrwidgets.core.graph.graph import KINDS
from attrwidgets.core.hooks import own_thread
from attrwidgets.errors import AttrWidgetsError


def _parse(graph, interventions) -> dict[tuple[str, int], list[tuple[int, int, float]]]:
    """{node_id or index: value} -> {(kind, layer): [(position, feature, value)]}."""
    if not isinstance(interventions, dict) or not interventions:
        raise AttrWidgetsError("interventions must be a non-empty dict {node_id: new_activation}; 0 ablates a node.")
    out: dict = {}
    for node, value in interventions.items():
        i = graph.nodes.index(node) if isinstance(node, str) else int(node)
        kind = KINDS[graph.nodes.kind[i]]
        if kind in ("token", "logit"):
            raise AttrWidgetsError(f"Node {graph.nodes.node_id[i]} is a {kind} node: only features, errors, heads and "
                                   "MLP nodes can be set (change the prompt or the targets instead).")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
                or not np.isfinite(value):
            raise AttrWidgetsError(f"The new activation of {graph.nodes.node_id[i]} must be a finite number; got {value!r}.")
        key = (kind, int(graph.nodes.layer[i]))
        out.setdefault(key, []).append((int(graph.nodes.position[i]), int(graph.nodes.feature[i]), float(value)))
    return out


def _forced_vector(real: torch.Tensor, value: float) -> torch.Tensor:
    norm = real.norm()
    return real * (value / norm) if norm > 0 else torch.zeros_like(real)


class _Interventions:
    def __init__(self, rep, parsed):
        self.rep, self.parsed = rep, parsed

    def acts(self, layer: int, acts: torch.Tensor) -> torch.Tensor:
        acts = acts.clone()
        acts[0] = 0  # position 0 has no feature nodes: its MLP output stays in the error's constant part
        for pos, feat, value in self.parsed.get(("feature", layer), ()):
            acts[pos, feat] = value
        return acts

    def error(self, layer: int) -> torch.Tensor:
        err = self.rep.errors[layer].clone()
        for pos, _, value in self.parsed.get(("error", layer), ()):
            err[pos] = _forced_vector(self.rep.errors[layer][pos], value)
        return err

    def force(self, kind: str, layer: int, out: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Heads: out/real (T, H, D); MLPs: (T, D)."""
        for pos, feat, value in self.parsed.get((kind, layer), ()):
            index = (pos, feat) if kind == "attention" else (pos,)
            out[index] = _forced_vector(real[index], value)
        return out


def _along_own_direction(now: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """A component node is the scalar u . out along its real direction u; the rest of its output stays at its
    real value (a fixed remainder, as an error node is): the graph's own replacement model, so a frozen
    intervention moves every node by exactly the graph's total effect."""
    from attrwidgets.core.graph.component_graph import unit

    u = unit(real)
    return real + ((now - real) * u).sum(-1, keepdim=True) * u


def _frozen_logits(rep, iv: _Interventions) -> torch.Tensor:
    f, L = rep.frozen, rep.n_layers
    x = f.blocks[0].x_in.clone()
    tc = getattr(rep, "transcoder", None)
    acts, inputs = [], []
    for layer in range(L):
        rec = f.blocks[layer]
        if tc is not None:
            X = x.unsqueeze(0).clone()
            attention_step(f, layer, X, torch.zeros(1, dtype=torch.long), budget=1 << 30)
            mid = X[0]
            reads = x if f.adapter.parallel else mid  # GPT-NeoX: the MLP reads the block input
            normed = apply_norm(reads.unsqueeze(0).clone(), f.norm_mlp(layer), rec.scale_mlp)[0]
            inputs.append(normed)
            acts.append(iv.acts(layer, tc.activate(layer, tc.encode(layer, normed))))
            x = mid + tc.reconstruct(acts, inputs, layer) + iv.error(layer)
            continue
        from attrwidgets.core.graph.component_graph import UNGATED, frozen_gates

        per_head, out_bias = head_outputs(f, layer, torch.stack([torch.zeros_like(x), x]))
        real_heads = head_outputs(f, layer, torch.stack([torch.zeros_like(rec.x_in), rec.x_in]))[0].sum(0)
        heads = iv.force("attention", layer, _along_own_direction(per_head.sum(0), real_heads), real_heads)
        mid = x + heads.sum(1) + (out_bias if out_bias is not None else 0)
        reads = x if f.adapter.parallel else mid
        normed = apply_norm(reads.unsqueeze(0).clone(), f.norm_mlp(layer), rec.scale_mlp)[0]
        w_in, gates, w_out = frozen_gates(f, layer)
        in_bias = f.mlp_in_map(layer).bias if f.adapter.name in UNGATED else None
        z = normed @ w_in.t() + (in_bias if in_bias is not None else 0)
        mlp = (gates * z) @ w_out.t()
        if f.mlp_out_map(layer).bias is not None:
            mlp = mlp + f.mlp_out_map(layer).bias
        if rec.post_mlp is not None:  # Gemma, OLMo 2: the frozen post-norm
            mlp = mlp * rec.post_mlp
        x = mid + iv.force("mlp", layer, _along_own_direction(mlp, rec.mlp_out), rec.mlp_out)
    final = apply_norm(x.unsqueeze(0).clone(), f.final_norm(), f.final_scale)[0]
    head = rep.frozen.adapter.lm_head(rep.frozen.model)
    with torch.no_grad():  # the head's output, before any soft-cap: what the graph's logit rows measure
        return head(final[-1].to(next(head.parameters()).dtype)).float()


@contextlib.contextmanager
def _real_hooks(rep, iv: _Interventions):
    f, a = rep.frozen, rep.frozen.adapter
    tc = getattr(rep, "transcoder", None)
    state = {"acts": [], "inputs": [], "normed": None}
    hooks = []

    def keep_input(module, args):
        state["normed"] = args[0][0].float()

    def replace_mlp(layer):
        # On the MLP's output as added to the stream (after Gemma's / OLMo 2's post-norm): what a transcoder
        # replaces; its input was kept by the MLP's pre-hook.
        def hook(module, args, out):
            normed = state["normed"]
            state["inputs"].append(normed)
            state["acts"].append(iv.acts(layer, tc.activate(layer, tc.encode(layer, normed))))
            new = tc.reconstruct(state["acts"], state["inputs"], layer) + iv.error(layer)
            return new.to(out.dtype).unsqueeze(0)
        return hook

    def force_mlp(layer):
        def hook(module, args, out):
            new = iv.force("mlp", layer, out[0].float().clone(), f.blocks[layer].mlp_out)
            return new.to(out.dtype).unsqueeze(0)
        return hook

    def force_heads(layer):
        H, hd = f.n_heads, f.head_dim
        w_o = f.out_map(layer).weight.view(-1, H, hd)  # (D, H, hd)

        # A head's node value is its write after the frozen post-norm (Gemma, OLMo 2): force it there, then
        # take it back before the norm, which the real model applies to all heads together.
        post = f.blocks[layer].post_attn
        post = torch.ones(1, w_o.shape[0]) if post is None else torch.where(post == 0, torch.ones_like(post), post)

        def hook(module, args, out):
            ctx = args[0][0].float().view(-1, H, hd)
            current = torch.einsum("thk,dhk->thd", ctx, w_o)
            after = current * post[:, None]
            change = (iv.force("attention", layer, after.clone(), rep.real_heads(layer)) - after) / post[:, None]
            return out + change.sum(1).to(out.dtype).unsqueeze(0)  # exactly 0 where no head is forced
        return hook

    try:
        for layer in range(rep.n_layers):
            mlp = a.get(f.model, a.mlp, block=layer)
            added = a.get(f.model, a.post_norm_mlp or a.mlp, block=layer)  # the MLP output the stream gets
            if tc is not None:
                hooks.append(mlp.register_forward_pre_hook(own_thread(keep_input)))
                hooks.append(added.register_forward_hook(own_thread(replace_mlp(layer))))
                continue
            if iv.parsed.get(("mlp", layer)):
                hooks.append(added.register_forward_hook(own_thread(force_mlp(layer))))
            if iv.parsed.get(("attention", layer)):
                hooks.append(a.get(f.model, a.o_proj, block=layer).register_forward_hook(own_thread(force_heads(layer))))
        yield
    finally:
        for h in hooks:
            h.remove()


def intervene(engine, graph, interventions, *, frozen: bool = True, top: int = 10) -> list[dict]:
    """-> the `top` tokens by new probability at the last position: token, id, prob, clean_prob, logit, clean_logit."""
    rep = engine.replacement
    if list(graph.token_ids) != rep.frozen.input_ids.tolist():
        raise AttrWidgetsError("This graph's engine holds another prompt: rebuild the graph first.")
    iv = _Interventions(rep, _parse(graph, interventions))
    clean = rep.frozen.real_logits(rep.length - 1)
    with torch.no_grad():
        if frozen:
            new = soft_capped(rep.frozen.model, _frozen_logits(rep, iv))
        else:
            with _real_hooks(rep, iv):
                ids = rep.frozen.input_ids.to(engine.handle.device).unsqueeze(0)
                new = engine.handle.model(input_ids=ids).logits[0, -1].float()
    new, p_new, p_clean = new.cpu(), torch.softmax(new.cpu(), -1), torch.softmax(clean, -1)
    decode = engine.handle.tokenizer.decode
    return [{"token": decode([i], clean_up_tokenization_spaces=False), "id": i, "prob": float(p_new[i]),
             "clean_prob": float(p_clean[i]), "logit": float(new[i]), "clean_logit": float(clean[i])}
            for i in p_new.topk(top).indices.tolist()]
