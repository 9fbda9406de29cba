"""Transcoder: a sparse replacement for every MLP of a model (docs/methods/graph.md, its file layouts).

Per-layer (PLT): the features of layer l read the MLP input of layer l and write its output.
Cross-layer (CLT): a feature read at layer l writes to the MLP outputs of layers l..L-1.
The input is what the MLP itself reads (the output of the pre-MLP norm: normalised, times the norm weight);
the output is the MLP output. Forward, as circuit-tracer computes it:
    pre = x @ W_enc.T + b_enc
    act = pre * (pre > threshold)          JumpReLU (strictly greater); ReLU: threshold 0; TopK: the k largest
    out = act @ W_dec + b_dec (+ x @ W_skip.T)

Saving and loading (our layout and circuit-tracer's) live in core/graph/transcoder_io.py; training in
core/graph/train.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from attrwidgets.core.graph.transcoder_write import save_transcoder
from attrwidgets.errors import AttrWidgetsError

KINDS = ("plt", "clt")
ACTIVATIONS = ("jumprelu", "relu", "topk")


@dataclass
class Transcoder:
    kind: str  # "plt" | "clt"
    activation: str  # "jumprelu" | "relu" | "topk"
    W_enc: list[torch.Tensor]  # per layer (F, D)
    b_enc: list[torch.Tensor]  # per layer (F,)
    W_dec: list[torch.Tensor]  # per layer: PLT (F, D); CLT (F, L - l, D), slice [:, k] writes to layer l + k
    b_dec: list[torch.Tensor]  # per OUTPUT layer (D,)
    threshold: list[torch.Tensor] | None = None  # per layer (F,), JumpReLU only
    W_skip: list[torch.Tensor] | None = None  # per layer (D, D), PLT only
    top_k: int | None = None  # TopK only
    config: dict = field(default_factory=dict)  # model name, hooks, training settings and figures

    def __post_init__(self):
        if self.kind not in KINDS:
            raise AttrWidgetsError(f"Unknown transcoder kind {self.kind!r}: use one of {', '.join(KINDS)}.")
        if self.activation not in ACTIVATIONS:
            raise AttrWidgetsError(f"Unknown activation {self.activation!r}: use one of {', '.join(ACTIVATIONS)}.")
        if self.activation == "jumprelu" and self.threshold is None:
            raise AttrWidgetsError("A JumpReLU transcoder needs a threshold per layer.")
        if self.activation == "topk" and not (isinstance(self.top_k, int) and self.top_k > 0):
            raise AttrWidgetsError(f"A TopK transcoder needs top_k > 0, got {self.top_k!r}.")

    # -- shape -------------------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.W_enc)

    @property
    def n_features(self) -> int:
        return int(self.W_enc[0].shape[0])

    @property
    def d_model(self) -> int:
        return int(self.W_enc[0].shape[1])

    def check_model(self, n_layers: int, d_model: int, model_name: str = "this model") -> None:
        """Refuse a transcoder made for another model, saying which size differs."""
        if self.d_model != d_model:
            raise AttrWidgetsError(
                f"This transcoder reads vectors of size {self.d_model} but {model_name} has d_model={d_model}: "
                "it was trained for another model. Train one with aw.train_transcoder(model) or load the right one.")
        if self.n_layers != n_layers:
            raise AttrWidgetsError(
                f"This transcoder has {self.n_layers} layers but {model_name} has {n_layers}: it was trained for "
                "another model. Train one with aw.train_transcoder(model) or load the right one.")

    # -- forward -----------------------------------------------------------------------------------
    def encode(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """(..., D) MLP input -> (..., F) pre-activations (what feature rows of a graph measure)."""
        return x.to(self.W_enc[layer].dtype) @ self.W_enc[layer].t() + self.b_enc[layer]

    def activate(self, layer: int, pre: torch.Tensor) -> torch.Tensor:
        if self.activation == "jumprelu":
            return pre * (pre > self.threshold[layer])
        if self.activation == "relu":
            return pre.clamp(min=0)
        top = pre.topk(min(self.top_k, pre.shape[-1]), dim=-1)
        return torch.zeros_like(pre).scatter_(-1, top.indices, top.values.clamp(min=0))

    def decoder(self, layer: int, out_layer: int) -> torch.Tensor:
        """(F, D): how the features read at `layer` write to the MLP output of `out_layer` (>= layer)."""
        if self.kind == "plt":
            if out_layer != layer:
                raise ValueError("a per-layer transcoder writes only to its own layer")
            return self.W_dec[layer]
        return self.W_dec[layer][:, out_layer - layer]

    def skip(self, layer: int, x: torch.Tensor) -> torch.Tensor | None:
        if self.W_skip is None:
            return None
        return x.to(self.W_skip[layer].dtype) @ self.W_skip[layer].t()

    def reconstruct(self, acts: list[torch.Tensor], inputs: list[torch.Tensor], out_layer: int) -> torch.Tensor:
        """MLP output of `out_layer` from every layer's activations (..., F) and inputs (..., D)."""
        sources = range(out_layer + 1) if self.kind == "clt" else (out_layer,)
        out = self.b_dec[out_layer].expand(*acts[out_layer].shape[:-1], self.d_model).clone()
        for layer in sources:
            out = out + acts[layer] @ self.decoder(layer, out_layer)
        skip = self.skip(out_layer, inputs[out_layer])
        return out if skip is None else out + skip

    def save(self, folder, format: str = "attrwidgets", dtype: torch.dtype | None = None):
        """Write into `folder`: format="attrwidgets" (config.json + safetensors, aw.load_transcoder reads it) or
        "circuit-tracer" (the layout circuit-tracer loads). Returns the folder's Path."""
        return save_transcoder(self, folder, format=format, dtype=dtype)

    def to(self, device=None, dtype=None) -> Transcoder:
        def move(tensors):
            return None if tensors is None else [t.to(device=device, dtype=dtype) for t in tensors]

        return Transcoder(self.kind, self.activation, move(self.W_enc), move(self.b_enc), move(self.W_dec),
                          move(self.b_dec), move(self.threshold), move(self.W_skip), self.top_k, dict(self.config))
