"""The component graph's replacement model (core/graph/replacement.py): heads, MLPs, tokens; no training.

A head or MLP node at (layer, position) writes its real output vector `out`; its scalar is a = u . out with
u = out / |out|, so a = |out| on the prompt. Its row is the gradient of a with every head and MLP a stop:
    head (l, h, q):  d a / d x_k = A[h, q, k] * N_k^T W_V,g^T W_O,h^T u    (x = block input, k <= q)
    MLP (l, q):      d a / d m_q = N_q^T W_in^T (f_q * (W_out^T u))        (m = the MLP's input side)
where N is the frozen norm and f_q the frozen gates (replacement.py): linear in the stream, exact on the prompt.
Downstream, a node acts through a * u; the part of a component's output change orthogonal to u is no node's and
stays fixed, like an error (graph.intervene(frozen=True) runs exactly this model; tests check total effects).
"""

from __future__ import annotations

import torch

from attrwidgets.core.frozen import FrozenForward
from attrwidgets.core.frozen_ops import head_outputs
from attrwidgets.core.graph.replacement import ATTENTION, MLP, Replacement
from attrwidgets.core.graph.sweep import Reads, norm_transpose
from attrwidgets.errors import AttrWidgetsError

UNGATED = ("gpt2", "gpt_neox")  # act(W_in x + b), no gate: the one bias is the input projection's


def frozen_gates(frozen: FrozenForward, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(W_in (I, D), f (T, I), W_out (D, I)) with MLP(x)[q] = W_out (f[q] * (W_in x[q] + b)) + b_out exactly."""
    rec, mlp = frozen.blocks[layer], frozen.adapter.get(frozen.model, frozen.adapter.mlp, block=layer)
    w_out = frozen.mlp_out_map(layer).weight
    if frozen.adapter.gate_up_fused:  # Phi-3: [gate, up] in one projection, act(gate) * up
        fused = mlp.gate_up_proj.weight.detach().float()
        with torch.no_grad():
            gates = mlp.activation_fn(rec.preact.to(fused.dtype)).float()
        return fused[fused.shape[0] // 2:], gates, w_out
    if hasattr(mlp, "up_proj") and hasattr(mlp, "act_fn"):  # SwiGLU: act(gate) * up, the gate frozen
        with torch.no_grad():
            gates = mlp.act_fn(rec.preact.to(next(mlp.parameters()).dtype)).float()
        return mlp.up_proj.weight.detach().float(), gates, w_out
    z = rec.preact  # GELU-style: act(z) = (act(z) / z) * z, the ratio frozen; act(z) -> z / 2 as z -> 0
    if frozen.adapter.name not in UNGATED:
        raise AttrWidgetsError(f"The component graph does not know the MLP of {frozen.adapter.name!r}.")
    ratio = torch.where(z.abs() > 1e-6, rec.values / torch.where(z.abs() > 1e-6, z, torch.ones_like(z)),
                        torch.full_like(z, 0.5))
    return frozen.mlp_in_map(layer).weight, ratio, w_out


def unit(vectors: torch.Tensor) -> torch.Tensor:
    norm = vectors.norm(dim=-1, keepdim=True)
    return torch.where(norm > 0, vectors / norm.clamp(min=torch.finfo(vectors.dtype).tiny), torch.zeros_like(vectors))


class ComponentReplacement(Replacement):
    through_attention = False  # every head is a node: the gradient stops at it

    def __init__(self, frozen: FrozenForward):
        super().__init__(frozen)
        L, T, H = self.n_layers, self.length, frozen.n_heads
        positions = torch.arange(1, T)
        self.head_block, self.mlp_block = [], []  # (start, count) per layer
        units = []
        for layer in range(L):
            x = frozen.blocks[layer].x_in
            per_head, _ = head_outputs(frozen, layer, torch.stack([torch.zeros_like(x), x]))
            heads = per_head.sum(0)[1:]  # (T-1, H, D): each head's real write, its value-bias share included
            vectors = heads.reshape(-1, heads.shape[-1])
            pos = positions.repeat_interleave(H)
            start = self._add_columns(ATTENTION, layer, pos, torch.arange(H).repeat(T - 1), vectors.norm(dim=-1).cpu())
            self._write(layer, "mid", start, pos, vectors)
            self.head_block.append((start, len(pos)))
            units.append(unit(vectors))
            mlp = frozen.blocks[layer].mlp_out[1:]
            start = self._add_columns(MLP, layer, positions, -1, mlp.norm(dim=-1).cpu())
            self._write(layer, "out", start, positions, mlp)
            self.mlp_block.append((start, T - 1))
            units.append(unit(mlp))
        self.n_target_candidates = self.n_columns
        self.units = torch.cat(units)  # (n_components, D): each node's own direction u
        self.add_tokens()
        cols = self.columns()
        self._kind, self._layer, self._position, self._feature = (cols[k].to(self.device) for k in
                                                                  ("kind", "layer", "position", "feature"))
        self._gates: dict[int, tuple] = {}

    def _mlp_maps(self, layer: int):
        if layer not in self._gates:
            self._gates[layer] = frozen_gates(self.frozen, layer)
        return self._gates[layer]

    def reads(self, columns: torch.Tensor) -> dict[tuple[int, str], Reads]:
        f, columns = self.frozen, columns.to(self.device)
        kind, layer, pos, head = (t[columns] for t in (self._kind, self._layer, self._position, self._feature))
        u = self.units[columns]
        out = {}
        hd, group = f.head_dim, f.n_heads // f.n_kv_heads
        for value in layer.unique().tolist():
            rec = f.blocks[value]
            heads = ((layer == value) & (kind == ATTENTION)).nonzero(as_tuple=True)[0]
            if len(heads):
                h = head[heads]
                w_o = f.out_map(value).weight.view(-1, f.n_heads, hd)  # (D, H, hd)
                u_heads = u[heads] if rec.post_attn is None else u[heads] * rec.post_attn[pos[heads]]  # post-norm
                through_o = torch.einsum("bd,bde->be", u_heads, w_o[:, h].permute(1, 0, 2))  # (n, hd)
                w_v = f.value_map(value).weight.view(f.n_kv_heads, hd, -1)  # (KV, hd, D)
                direction = norm_transpose(torch.einsum("be,bed->bd", through_o, w_v[h // group]), f.norm_attn(value))
                weights = rec.attention[h, pos[heads]] * rec.scale_attn  # (n, T): pattern row times norm scale
                out[(value, "in")] = Reads(heads, weights, direction)  # heads: first at "in" (merged below)
            mlps = ((layer == value) & (kind == MLP)).nonzero(as_tuple=True)[0]
            if len(mlps):
                w_in, gates, w_out = self._mlp_maps(value)
                q = pos[mlps]
                u_mlps = u[mlps] if rec.post_mlp is None else u[mlps] * rec.post_mlp[q]  # through the post-norm
                direction = norm_transpose((u_mlps @ w_out) * gates[q] @ w_in, f.norm_mlp(value))
                weights = torch.zeros(len(mlps), self.length, device=self.device)
                weights[torch.arange(len(mlps)), q] = rec.scale_mlp[q]
                reads = Reads(mlps, weights, direction)
                site = (value, self.mlp_site)  # "in" for a parallel block, where the heads read too
                out[site] = out[site].merged(reads) if site in out else reads
        return out

    def real_heads(self, layer: int) -> torch.Tensor:
        """(T, H, D) every head's real write at `layer` (position 0 included)."""
        x = self.frozen.blocks[layer].x_in
        return head_outputs(self.frozen, layer, torch.stack([torch.zeros_like(x), x]))[0].sum(0)

    def target_values(self, columns: torch.Tensor) -> torch.Tensor:
        """a = u . out = |out| on the prompt."""
        return torch.cat(self.activation)[columns.cpu()].to(self.device)
