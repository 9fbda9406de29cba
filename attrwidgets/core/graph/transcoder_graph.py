"""The transcoder graph's replacement model (core/graph/replacement.py): features, errors, tokens."""

from __future__ import annotations

import torch

from attrwidgets.core.frozen import FrozenForward
from attrwidgets.core.graph.replacement import ERROR, FEATURE, Replacement, normed_input
from attrwidgets.core.graph.sweep import Reads, norm_transpose
from attrwidgets.core.graph.transcoder import Transcoder


class TranscoderReplacement(Replacement):
    through_attention = True

    def __init__(self, frozen: FrozenForward, transcoder: Transcoder):
        super().__init__(frozen)
        L, T = self.n_layers, self.length
        tc = self.transcoder = transcoder.to(self.device, torch.float32)
        self.inputs = [normed_input(frozen, layer) for layer in range(L)]
        self.pre = [tc.encode(layer, self.inputs[layer]) for layer in range(L)]  # (T, F)
        acts = [tc.activate(layer, self.pre[layer]) for layer in range(L)]
        for a in acts:
            a[0] = 0  # position 0: no feature nodes; what it writes stays in the constant part
        self.acts = acts
        self.errors = [frozen.blocks[layer].mlp_out - tc.reconstruct(acts, self.inputs, layer) for layer in range(L)]

        # Features, sorted by (layer, position, feature): each layer's block is sorted by position.
        self.feature_start = []
        active = []
        for layer in range(L):
            pos, feat = acts[layer].nonzero(as_tuple=True)
            values = acts[layer][pos, feat]
            start = self._add_columns(FEATURE, layer, pos, feat, values)
            self.feature_start.append(start)
            active.append((start, pos, feat, values))
        self.n_target_candidates = self.n_columns
        for layer, (start, pos, feat, values) in enumerate(active):
            out_layers = range(layer, L) if tc.kind == "clt" else (layer,)
            for out_layer in out_layers:
                vectors = tc.decoder(layer, out_layer)[feat] * values.unsqueeze(1)
                self._write(out_layer, "out", start, pos, vectors)
        # Errors (layer, position >= 1).
        positions = torch.arange(1, T)
        self.error_start = self.n_columns
        for layer in range(L):
            start = self._add_columns(ERROR, layer, positions, -1, self.errors[layer][1:].norm(dim=-1).cpu())
            self._write(layer, "out", start, positions, self.errors[layer][1:])
        self.add_tokens()
        cols = self.columns()
        self._layer, self._position, self._feature = (cols["layer"].to(self.device), cols["position"].to(self.device),
                                                      cols["feature"].to(self.device))
        self._scale = torch.stack([b.scale_mlp for b in frozen.blocks])  # (L, T)

    def skip_weight(self, layer: int):
        return None if self.transcoder.W_skip is None else self.transcoder.W_skip[layer]

    def reads(self, columns: torch.Tensor) -> dict[tuple[int, str], Reads]:
        columns = columns.to(self.device)
        layer, pos, feat = self._layer[columns], self._position[columns], self._feature[columns]
        B, T = len(columns), self.length
        rows = torch.arange(B, device=self.device)
        weights = torch.zeros(B, T, device=self.device)
        weights[rows, pos] = self._scale[layer, pos]
        out = {}
        for value in layer.unique().tolist():
            pick = (layer == value).nonzero(as_tuple=True)[0]
            direction = norm_transpose(self.transcoder.W_enc[value][feat[pick]], self.frozen.norm_mlp(value))
            out[(value, self.mlp_site)] = Reads(pick, weights[pick], direction)
        return out

    def target_values(self, columns: torch.Tensor) -> torch.Tensor:
        """The real pre-activations of feature columns (what their rows measure)."""
        columns = columns.to(self.device)
        layer, pos, feat = self._layer[columns], self._position[columns], self._feature[columns]
        pre = torch.stack(self.pre)  # (L, T, F)
        return pre[layer, pos, feat]
