"""NodeTable: one row per attribution-graph node, as numpy columns, with the public viewer's node ids.

Node ids (circuit-tracer's viewer format): token "E_{vocab}_{pos}", feature "{layer}_{feature}_{pos}", error
"{layer}_-1_{pos}" (later upstream versions; 0.5's "0_{layer}_{pos}" collides with layer-0 feature ids), logit
"{n_layers+1}_{vocab}_{pos}" or "{n_layers+1}_{a}-{b}_{pos}" for a contrast logit(a) - logit(b), and for the
transcoder-free component graph attention "A{layer}_{head}_{pos}" and mlp "M{layer}_{pos}".
"""

from __future__ import annotations

import difflib

import numpy as np
import torch

from attrwidgets.errors import AttrWidgetsError

KINDS = ("feature", "error", "token", "logit", "attention", "mlp")


def _kind_codes(kind, n: int | None = None) -> np.ndarray:
    values = np.asarray(kind)
    if values.dtype.kind in "iu":
        codes = values.astype(np.int8)
        if codes.size and (codes.min() < 0 or codes.max() >= len(KINDS)):
            raise AttrWidgetsError(f"Node kind codes must be 0..{len(KINDS) - 1} (indices into {KINDS}).")
        return codes
    unknown = sorted({str(k) for k in values.ravel()} - set(KINDS))
    if unknown:
        raise AttrWidgetsError(f"Unknown node kind(s) {unknown}; use one of {KINDS}.")
    lookup = {k: i for i, k in enumerate(KINDS)}
    return np.array([lookup[str(k)] for k in values.ravel()], dtype=np.int8)


def _column(values, n: int, dtype, fill, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, fill, dtype=dtype)
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    out = np.asarray(values).astype(dtype).ravel()
    if out.shape != (n,):
        raise AttrWidgetsError(f"Node column {name!r} has {out.size} entries; expected {n} (one per node).")
    return out


class NodeTable:
    """One row per node, as numpy columns. layer: tokens -1, logits n_layers. feature: the feature index, the head
    index (attention), the vocab id (token, logit) or -1 (error, mlp). contrast: vocab id b of a contrast logit
    logit(a) - logit(b), else -1. activation: NaN where a node has none."""

    def __init__(
        self, kind, layer, position, feature, activation=None, contrast=None, n_layers: int | None = None
    ):
        self.kind = _kind_codes(kind)
        n = self.kind.size
        self.layer = _column(layer, n, np.int32, 0, "layer")
        self.position = _column(position, n, np.int32, 0, "position")
        self.feature = _column(feature, n, np.int64, -1, "feature")
        self.activation = _column(activation, n, np.float32, np.nan, "activation")
        self.contrast = _column(contrast, n, np.int64, -1, "contrast")
        self.influence = np.full(n, np.nan, dtype=np.float32)
        self.label = [""] * n
        self.n_layers = self._infer_layers(n_layers)
        self._check_layers()
        self.node_id = self._build_ids()
        self._lookup = {node_id: i for i, node_id in enumerate(self.node_id)}
        if len(self._lookup) != n:
            seen, duplicates = set(), []
            for node_id in self.node_id:
                (duplicates.append if node_id in seen else seen.add)(node_id)
            raise AttrWidgetsError(f"Node ids must be unique; repeated: {sorted(set(duplicates))[:5]}.")

    def _infer_layers(self, n_layers) -> int:
        if n_layers is not None:
            return int(n_layers)
        logits = self.kind == KINDS.index("logit")
        if logits.any():
            return int(self.layer[logits].max())
        inner = ~logits & (self.kind != KINDS.index("token"))
        return int(self.layer[inner].max()) + 1 if inner.any() else 0

    def _check_layers(self) -> None:
        inner = np.isin(self.kind, [KINDS.index(k) for k in ("feature", "error", "attention", "mlp")])
        bad = inner & ((self.layer < 0) | (self.layer >= self.n_layers))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise AttrWidgetsError(
                f"Node {i} ({KINDS[self.kind[i]]}) has layer {self.layer[i]}; layers run 0..{self.n_layers - 1} "
                "(tokens -1, logits n_layers)."
            )

    def _build_ids(self) -> list[str]:
        logit_layer = self.n_layers + 1  # the viewer puts logits one above the last layer
        ids = []
        for k, layer, pos, feat, b in zip(
            self.kind.tolist(),
            self.layer.tolist(),
            self.position.tolist(),
            self.feature.tolist(),
            self.contrast.tolist(),
        ):
            if k == 0:
                ids.append(f"{layer}_{feat}_{pos}")
            elif k == 1:  # not circuit-tracer 0.5's "0_{layer}_{pos}": it collides with layer-0 feature ids
                ids.append(f"{layer}_-1_{pos}")
            elif k == 2:
                ids.append(f"E_{feat}_{pos}")
            elif k == 3:
                ids.append(f"{logit_layer}_{feat}-{b}_{pos}" if b >= 0 else f"{logit_layer}_{feat}_{pos}")
            elif k == 4:
                ids.append(f"A{layer}_{feat}_{pos}")
            else:
                ids.append(f"M{layer}_{pos}")
        return ids

    def __len__(self) -> int:
        return self.kind.size

    def __getitem__(self, i) -> dict:
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"node index {i} out of range for {len(self)} nodes")
        i %= len(self)
        activation, influence = float(self.activation[i]), float(self.influence[i])
        return {
            "node_id": self.node_id[i],
            "kind": KINDS[self.kind[i]],
            "layer": int(self.layer[i]),
            "position": int(self.position[i]),
            "feature": int(self.feature[i]),
            "activation": None if np.isnan(activation) else activation,
            "influence": None if np.isnan(influence) else influence,
            "label": self.label[i],
        }

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        counts = ", ".join(
            f"{int((self.kind == c).sum())} {k}" for c, k in enumerate(KINDS) if (self.kind == c).any()
        )
        return f"NodeTable({len(self)} nodes: {counts})"

    def index(self, node_id: str) -> int:
        """Position of a node id; an unknown id names a few similar ones."""
        try:
            return self._lookup[node_id]
        except (KeyError, TypeError):
            close = difflib.get_close_matches(str(node_id), self.node_id, n=4, cutoff=0.6)
            hint = f" Similar ids: {close}." if close else ""
            raise AttrWidgetsError(
                f"No node {node_id!r} in this graph.{hint} Ids: token E_<vocab>_<pos>, feature <layer>_<feature>_<pos>, "
                "error <layer>_-1_<pos>, logit <n_layers+1>_<vocab>_<pos>, attention A<layer>_<head>_<pos>, mlp M<layer>_<pos>."
            ) from None

    def mask(self, *kinds: str) -> np.ndarray:
        return np.isin(self.kind, _kind_codes(list(kinds)) if kinds else [])

    def take(self, indices) -> NodeTable:
        """A new table with these rows (labels and influence carried over)."""
        idx = np.asarray(indices, dtype=np.int64)
        out = NodeTable(
            self.kind[idx],
            self.layer[idx],
            self.position[idx],
            self.feature[idx],
            self.activation[idx],
            self.contrast[idx],
            n_layers=self.n_layers,
        )
        out.influence = self.influence[idx].copy()
        out.label = [self.label[i] for i in idx.tolist()]
        return out
