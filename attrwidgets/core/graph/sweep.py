"""Batched backward sweeps through the frozen local replacement model: one row of the adjacency per target.

The residual stream of a prompt, with attention patterns and norm scales frozen (core/frozen.py), is linear
in what is written into it. A graph's nodes write at three kinds of site per layer l:
    (l, "in")   the block input (tokens write at (0, "in"))
    (l, "mid")  after attention + residual: the MLP's input side (attention heads write here)
    (l, "out")  after the MLP: the block output (transcoder features, error nodes, MLP components)
and its targets read at the same sites through a frozen norm (features and MLP components at "mid", heads at
"in", logits at (L-1, "out") through the final norm). A sweep injects each target's read direction as the
gradient of its own batch row and carries the gradients down, site by site: at every site first the targets
that read there are injected, then the sources that write there are contracted with the gradient. So an edge
is exactly source vector . d target / d site, the direct effect (docs/methods/graph.md).

Between sites, MLPs are stops (their outputs are nodes or constants) except a transcoder's linear skip path,
and attention is either frozen and passed through (transcoder graphs: attention is not a node) or a stop
(component graphs: every head is a node). Everything runs in float32 on the model's device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from attrwidgets.core.frozen import FrozenForward, NormSpec

SITES = ("out", "mid", "in")  # the order a sweep meets them in within a layer, going down


def norm_transpose(g: torch.Tensor, spec: NormSpec, scale: torch.Tensor | None = None) -> torch.Tensor:
    """g (..., P, D) at a frozen norm's output -> its input: LayerNorm centres, RMSNorm does not.
    `scale` (P,) is the frozen per-position scale; None leaves it out (the caller weighs positions)."""
    h = g * spec.weight
    if scale is not None:
        h = h * scale.unsqueeze(-1)
    return h - h.mean(-1, keepdim=True) if spec.kind == "layer" else h


@dataclass
class Writes:
    """Sources writing at one site: column col_start + j gets G[:, positions[j]] . vectors[j].
    Positions are sorted, so a prefix of positions is a prefix of the sources."""

    col_start: int
    positions: torch.Tensor  # (n,) long, ascending
    vectors: torch.Tensor  # (n, D)
    runs: list[tuple[int, int, int]] = field(init=False)  # (position, start, stop) of equal positions

    def __post_init__(self):
        pos = self.positions.tolist()
        self.runs, start = [], 0
        for j in range(1, len(pos) + 1):
            if j == len(pos) or pos[j] != pos[start]:
                self.runs.append((pos[start], start, j))
                start = j

    def record(self, out: torch.Tensor, G: torch.Tensor) -> None:
        P = G.shape[1]
        if len(self.runs) == len(self.positions):  # one source per position: a single batched contraction
            n = int(torch.searchsorted(self.positions, P))
            if n:
                c = self.col_start
                out[:, c:c + n] += torch.einsum("bnd,nd->bn", G[:, self.positions[:n]], self.vectors[:n])
            return
        for p, s, e in self.runs:  # many sources per position (features): one matmul each
            if p >= P:
                break
            out[:, self.col_start + s:self.col_start + e] += G[:, p] @ self.vectors[s:e].t()


@dataclass
class Reads:
    """Targets reading at one site: batch row b gets gradient weights[b, k] * direction[b] at position k
    (the frozen norm's scale already in the weights, its weight and centring in the direction)."""

    rows: torch.Tensor  # (n,) long batch rows
    weights: torch.Tensor  # (n, P)
    directions: torch.Tensor  # (n, D)

    def inject(self, G: torch.Tensor) -> None:
        G[self.rows] += self.weights[:, : G.shape[1], None] * self.directions[:, None, :]

    def merged(self, other: Reads) -> Reads:
        """Both sets of targets reading at one site (their rows are distinct)."""
        return Reads(torch.cat([self.rows, other.rows]), torch.cat([self.weights, other.weights]),
                     torch.cat([self.directions, other.directions]))


class Sweep:
    """The replacement model's backward: writes per site are fixed per graph; reads change per batch."""

    def __init__(self, frozen: FrozenForward, writes: dict[tuple[int, str], list[Writes]], *,
                 through_attention: bool, skip: Callable[[int], torch.Tensor | None] | None = None):
        self.frozen, self.writes, self.through_attention = frozen, writes, through_attention
        self.skip = skip or (lambda layer: None)
        self._maps: dict[int, tuple] = {}

    def _layer_maps(self, layer: int):
        if layer not in self._maps:
            f = self.frozen
            self._maps[layer] = (f.out_map(layer).weight, f.value_map(layer).weight, f.norm_attn(layer),
                                 f.norm_mlp(layer), self.skip(layer))
        return self._maps[layer]

    def attention_transpose(self, layer: int, G: torch.Tensor) -> torch.Tensor:
        """d/d(block input) of what the frozen attention of `layer` adds, for gradients G (B, P, D)."""
        f, (w_o, w_v, norm, _, _) = self.frozen, self._layer_maps(layer)
        B, P, _ = G.shape
        H, kv, hd = f.n_heads, f.n_kv_heads, f.head_dim
        A = f.blocks[layer].attention[:, :P, :P]
        post = f.blocks[layer].post_attn
        if post is not None:  # the frozen post-norm on the attention output: diagonal per position
            G = G * post[:P]
        g_ctx = (G.reshape(B * P, -1) @ w_o).view(B, P, H, hd).permute(2, 1, 0, 3).reshape(H, P, B * hd)
        g_v = torch.bmm(A.transpose(1, 2), g_ctx).view(kv, H // kv, P, B, hd).sum(1)  # GQA: a group shares v
        g_normed = g_v.permute(2, 1, 0, 3).reshape(B * P, kv * hd) @ w_v
        return norm_transpose(g_normed.view(B, P, -1), norm, f.blocks[layer].scale_attn[:P])

    def rows(self, reads: dict[tuple[int, str], Reads], batch: int, n_columns: int, length: int,
             top_layer: int, on_site: Callable[[int, str, torch.Tensor], None] | None = None,
             check: Callable[[], None] | None = None) -> torch.Tensor:
        """(batch, n_columns) direct effects of every source on each batch row's target, over positions
        0..length-1 (a target at position p needs only the prefix 0..p: attention is causal)."""
        f = self.frozen
        device = f.blocks[0].x_in.device
        out = torch.zeros(batch, n_columns, device=device)
        G = torch.zeros(batch, length, f.blocks[0].x_in.shape[1], device=device)

        def visit(layer: int, site: str) -> None:
            if (layer, site) in reads:
                reads[(layer, site)].inject(G)
            for w in self.writes.get((layer, site), ()):
                w.record(out, G)
            if on_site is not None:
                on_site(layer, site, G)

        for layer in range(top_layer, -1, -1):
            if check is not None:
                check()
            visit(layer, "out")
            skip = self._layer_maps(layer)[4]
            through_skip = None
            if skip is not None:  # out = ... + normed @ W_skip.T: the one path through a replaced MLP
                through_skip = norm_transpose(G @ skip, self._layer_maps(layer)[3], f.blocks[layer].scale_mlp[:length])
                if not f.adapter.parallel:
                    G, through_skip = G + through_skip, None
            visit(layer, "mid")
            if self.through_attention:
                G = G + self.attention_transpose(layer, G)
            if through_skip is not None:  # a parallel block's MLP reads its input, past the attention
                G = G + through_skip
            visit(layer, "in")
        return out
