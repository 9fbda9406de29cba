"""What a Graph built in this kernel keeps of its model: rebuild with other settings, label nodes, intervene.

Labels need no feature database: a feature's label is its decoder direction read through the final norm's
weight and the unembedding (its top tokens); a head's or an MLP's is its real output read the same way.
"""

from __future__ import annotations

import numpy as np
import torch

from attrwidgets.core.graph.graph import KINDS

TOP_TOKENS = 3


class GraphEngine:
    """`build` is aw.attribution_graph, handed in by the module that builds graphs (core/graph/attribution.py),
    which imports this one."""

    def __init__(self, handle, transcoder, settings: dict, replacement, build):
        self.handle, self.transcoder, self.settings = handle, transcoder, dict(settings)
        self.replacement = replacement  # kept for labels and frozen interventions on this prompt
        self.build = build

    def rebuild(self, graph, **changes):
        """attribution_graph again with some settings changed; `prompt` (token ids) explains another prompt of the
        same model and transcoder (the GraphView's target rows: a prefix of the source's sequence)."""
        settings = {**self.settings, **changes}
        prompt = settings.pop("prompt", None)
        return self.build(self.handle, list(graph.token_ids if prompt is None else prompt), transcoder=self.transcoder,
                          **settings)

    def estimate(self, graph, **changes):
        """What rebuild(graph, **changes) will take (core/estimate.py)."""
        from attrwidgets.core.estimate import as_estimate, cost_of

        settings = {**self.settings, **changes}
        prompt = settings.pop("prompt", None)
        n_tokens = len(graph.token_ids if prompt is None else prompt)
        return as_estimate(self.handle, cost_of(self.handle, "attribution_graph", n_tokens, 0, settings))

    def intervene(self, graph, interventions, frozen: bool = True, top: int = 10):
        from attrwidgets.core.graph.intervene import intervene

        return intervene(self, graph, interventions, frozen=frozen, top=top)

    # -- labels ------------------------------------------------------------------------------------
    def labeler(self, graph):
        return lambda indices: self.labels(graph, indices)

    def _directions(self, graph, indices: np.ndarray) -> torch.Tensor:
        rep, nodes = self.replacement, graph.nodes
        out = torch.zeros(len(indices), rep.frozen.blocks[0].x_in.shape[1], device=rep.device)
        tc = getattr(rep, "transcoder", None)
        for j, i in enumerate(indices.tolist()):
            kind, layer, pos, feat = KINDS[nodes.kind[i]], int(nodes.layer[i]), int(nodes.position[i]), int(nodes.feature[i])
            if kind == "feature":
                outs = range(layer, rep.n_layers) if tc.kind == "clt" else (layer,)
                out[j] = sum(tc.decoder(layer, k)[feat] for k in outs)
            elif kind == "error":
                out[j] = rep.errors[layer][pos]
            elif kind == "mlp":
                out[j] = rep.frozen.blocks[layer].mlp_out[pos]
            elif kind == "attention":
                start, _count = rep.head_block[layer]
                out[j] = rep.units[start + (pos - 1) * rep.frozen.n_heads + feat]
        return out

    def labels(self, graph, indices) -> list[str]:
        indices = np.asarray(indices, dtype=np.int64)
        rep = self.replacement
        final = rep.frozen.final_norm()
        logits = (self._directions(graph, indices) * final.weight) @ rep.frozen.unembedding().weight.t()
        top = logits.topk(TOP_TOKENS, dim=-1).indices.cpu().tolist()
        decode = self.handle.tokenizer.decode
        out = []
        for i, ids in zip(indices.tolist(), top):
            kind, layer = KINDS[graph.nodes.kind[i]], int(graph.nodes.layer[i])
            words = " ".join(repr(decode([t], clean_up_tokenization_spaces=False)) for t in ids)
            prefix = {"feature": f"L{layer} #{int(graph.nodes.feature[i])}", "error": f"error L{layer}",
                      "mlp": f"MLP L{layer}", "attention": f"L{layer}.H{int(graph.nodes.feature[i])}"}[kind]
            out.append(f"{prefix} \u2192 {words}")
        return out
