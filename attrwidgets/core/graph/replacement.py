"""The local replacement model of one prompt: its source nodes (what writes) and how its targets read.

Transcoder graphs (circuit-tracer's method): each MLP is replaced by the transcoder plus an error node (real
MLP output - transcoder output), so the prompt is reproduced exactly; sources are the active features
(a_i * W_dec,i written to the MLP output of their layer, or of every later layer for a CLT), the errors and the
token embeddings; features read the MLP input through the frozen norm (their pre-activation).

Component graphs (no transcoder): every attention head's output and every MLP's output at a position is a node,
the gradient stops at all of them, and a node's scalar is its output's length along its own real direction u:
a = u . out. A head's out is linear in its input with the pattern frozen; an MLP's is made linear by freezing
each neuron's gate at its real value (SwiGLU: act(gate) times the linear up projection; GELU: gelu(z) / z
times the affine z), which is exact on the prompt. So in both graphs a target's in-edges plus the constant
terms (biases, position 0) add up to its value exactly, and tests check that.

Position 0 carries no feature, error or component nodes (circuit-tracer's convention: it is the attention
sink); what it writes is constant. Column order: [features or components][errors][tokens], features sorted by
(layer, position, feature), components per layer as heads by (position, head) then MLPs by position.
"""

from __future__ import annotations

from functools import cached_property

import torch

from attrwidgets.core.frozen import FrozenForward
from attrwidgets.core.graph.sweep import Reads, Sweep, Writes, norm_transpose

FEATURE, ERROR, TOKEN, LOGIT, ATTENTION, MLP = range(6)  # codes into graph.KINDS


def normed_input(frozen: FrozenForward, layer: int) -> torch.Tensor:
    """(T, D) what the MLP of `layer` reads: its norm's output on the real state (the transcoder's input)."""
    spec, mid = frozen.norm_mlp(layer), frozen.blocks[layer].mlp_reads
    x = mid - mid.mean(-1, keepdim=True) if spec.kind == "layer" else mid
    y = x * frozen.blocks[layer].scale_mlp.unsqueeze(-1) * spec.weight
    return y + spec.bias if spec.bias is not None else y


class Replacement:
    """Shared by both graph kinds: the sources' columns, their writes, and target reads per node."""

    through_attention = True

    def __init__(self, frozen: FrozenForward):
        self.frozen = frozen
        self.n_layers, self.length = frozen.n_layers, frozen.length
        self.device = frozen.blocks[0].x_in.device
        # Source columns (node records); subclasses append blocks of them in column order.
        self.kind, self.layer, self.position, self.feature, self.activation = [], [], [], [], []
        self.writes: dict[tuple[int, str], list[Writes]] = {}
        # Per target candidate (a source column that also reads): its site, read position(s) and direction.
        self.read_site: list[tuple[int, str]] = []
        # Where an MLP (or a transcoder's features) reads the stream: after attention, or the block's input
        # where attention and MLP run in parallel (GPT-NeoX).
        self.mlp_site = "in" if frozen.adapter.parallel else "mid"

    @property
    def n_columns(self) -> int:
        return int(sum(len(k) for k in self.kind))

    def _add_columns(self, kind: int, layer, position, feature, activation) -> int:
        start = self.n_columns
        n = len(position)
        self.kind.append(torch.full((n,), kind, dtype=torch.int8))
        for column, value in ((self.layer, layer), (self.position, position), (self.feature, feature)):
            column.append(torch.as_tensor(value, dtype=torch.long).expand(n).cpu())
        self.activation.append(torch.as_tensor(activation, dtype=torch.float32).expand(n).cpu())
        return start

    def _write(self, layer: int, site: str, col_start: int, positions: torch.Tensor, vectors: torch.Tensor) -> None:
        self.writes.setdefault((layer, site), []).append(Writes(col_start, positions.to(self.device), vectors))

    def columns(self) -> dict[str, torch.Tensor]:
        cat = torch.cat
        return {"kind": cat(self.kind), "layer": cat(self.layer), "position": cat(self.position),
                "feature": cat(self.feature), "activation": cat(self.activation)}

    # Read once the columns are complete (after construction).
    @cached_property
    def columns_position(self) -> torch.Tensor:
        return torch.cat(self.position)

    @cached_property
    def columns_layer(self) -> torch.Tensor:
        return torch.cat(self.layer)

    def add_tokens(self) -> None:
        T = self.length
        ids = self.frozen.input_ids
        start = self._add_columns(TOKEN, -1, torch.arange(T), ids, float("nan"))
        self._write(0, "in", start, torch.arange(T), self.frozen.blocks[0].x_in)
        self.token_start = start

    def sweep(self) -> Sweep:
        return Sweep(self.frozen, self.writes, through_attention=self.through_attention, skip=self.skip_weight)

    def skip_weight(self, layer: int):
        return None

    # -- targets -------------------------------------------------------------------------------------
    def reads(self, columns: torch.Tensor) -> dict[tuple[int, str], Reads]:
        """Reads for a batch of target columns (batch row b = columns[b])."""
        raise NotImplementedError

    def logit_reads(self, directions: torch.Tensor, rows: torch.Tensor) -> dict[tuple[int, str], Reads]:
        """Demeaned-logit (or contrast) directions (n, D) read at the last position through the final norm."""
        f, T = self.frozen, self.length
        weights = torch.zeros(len(rows), T, device=self.device)
        weights[:, T - 1] = f.final_scale[T - 1]
        return {(self.n_layers - 1, "out"): Reads(rows.to(self.device), weights,
                                                  norm_transpose(directions.to(self.device), f.final_norm()))}

