"""Attention weights of the position that predicts each target, per layer and head."""

from __future__ import annotations

import numpy as np
import torch

from attrwidgets.core.token.registry import MethodOutput, register
from attrwidgets.errors import AttrWidgetsError


@register(
    "attention",
    defaults={"layer": None, "head": None},
    cheap=True,
    summary="attention weights of the predicting position; scores = mean over the chosen layers/heads",
)
def attention(fn, options, progress=None) -> MethodOutput:
    model = fn.model
    if getattr(model.config, "_attn_implementation", "eager") != "eager":
        # sdpa/flash return no weights (docs/architecture.md): switch this model to eager for good.
        model.set_attn_implementation("eager")
    with torch.no_grad():
        out = fn.adapter.base(model)(input_ids=fn.input_ids.unsqueeze(0), output_attentions=True, use_cache=False)
    if not out.attentions or out.attentions[0] is None:
        raise AttrWidgetsError("The model returned no attention weights: load it with attn_implementation='eager'.")
    stack = torch.stack([a[0] for a in out.attentions]).float()  # (L, H, T, T) rows queries
    per_target = stack[:, :, fn.pred_positions, :].permute(2, 0, 1, 3)  # (n, L, H, T)
    n_layers, n_heads = per_target.shape[1:3]
    layer, head = options["layer"], options["head"]
    layers = range(n_layers) if layer is None else [_check_index("layer", layer, n_layers)]
    heads = range(n_heads) if head is None else [_check_index("head", head, n_heads)]
    chosen = per_target[:, list(layers)][:, :, list(heads)]
    return MethodOutput(scores=chosen.mean(dim=(1, 2)).numpy(), attention=per_target.numpy().astype(np.float32))


def _check_index(name: str, value, size: int) -> int:
    if not isinstance(value, (int, np.integer)) or not -size <= value < size:
        raise AttrWidgetsError(f"{name}={value!r} is out of range: this model has {size} ({name}s 0..{size - 1}).")
    return int(value) % size
