"""Which tensor a layer IG perturbs: an adapter role or any dotted module path, resolved to a boundary.

Roles: "embeddings" (the token embedding module's output), "block L" (block L's output), "block L attn"
(its attention module's output), "block L mlp" (its MLP module's output), "block L input" (its input).
A dotted path that names one of those modules maps to the same boundary, so the forward resumes right after
it through core/boundaries.py. Any other module (a norm, a projection) is perturbed by a forward hook that
replaces its output in a whole-model forward of the batch: exact, but the layers before it run once per
path point as well.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from attrwidgets.errors import AttrWidgetsError

DEFAULT_BLOCK = 10
_ROLE = re.compile(r"^block\s+(\d+)(?:\s+(input|attn|mlp))?$")
_SITE_OF_ROLE = {None: "output", "input": "input", "attn": "attn", "mlp": "mlp"}
_ROLE_OF_SITE = {"output": "", "input": " input", "attn": " attn", "mlp": " mlp"}


@dataclass(frozen=True)
class LayerSpec:
    kind: str  # "embeddings", "boundary" (site, layer) or "module" (path)
    site: str = ""
    layer: int = -1
    path: str = ""
    label: str = ""


def _block_path(adapter, layer: int, role: str | None) -> str:
    base = f"{adapter.blocks}.{layer}"
    if role is None:
        return base
    return f"{base}.{getattr(adapter, role)}"


def role_names(handle) -> list[str]:
    n = handle.adapter.n_layers(handle.model)
    return ["embeddings"] + [f"block {i}{suffix}" for i in range(n) for suffix in ("", " attn", " mlp")]


def resolve_layer(handle, layer) -> LayerSpec:
    """A role ("block 10", "block 10 attn", "embeddings") or a dotted module path -> LayerSpec."""
    adapter, model = handle.adapter, handle.model
    n = adapter.n_layers(model)
    if layer is None:  # the "model.layers.10" where the model has it, else its middle block
        layer = f"block {DEFAULT_BLOCK if n > DEFAULT_BLOCK else n // 2}"
    if isinstance(layer, int) and not isinstance(layer, bool):
        layer = f"block {layer}"
    if not isinstance(layer, str) or not layer.strip():
        raise AttrWidgetsError(f"layer must be a role like 'block {n // 2}' or a module path; got {layer!r}.")
    text = " ".join(layer.split())
    if text == "embeddings":
        return LayerSpec("embeddings", label="embeddings", path=adapter.embed_tokens)
    match = _ROLE.match(text)
    if match:
        index, role = int(match.group(1)), match.group(2)
        if not 0 <= index < n:
            raise AttrWidgetsError(f"Layer {text!r} is out of range: this model has {n} blocks (0..{n - 1}).")
        return LayerSpec("boundary", _SITE_OF_ROLE[role], index, label=text,
                         path=_block_path(adapter, index, None if role in (None, "input") else role))
    names = dict(model.named_modules())
    if text not in names:
        near = difflib.get_close_matches(text, [*names, *role_names(handle)], n=4, cutoff=0.5)
        hint = f" Nearest: {', '.join(near)}." if near else ""
        raise AttrWidgetsError(
            f"No layer {text!r} in this model.{hint} Use a role ('embeddings', 'block {n // 2}', 'block {n // 2} attn', "
            f"'block {n // 2} mlp') or a dotted module path (aw.describe_boundaries(model) lists them)."
        )
    if text == adapter.embed_tokens:
        return LayerSpec("embeddings", label="embeddings", path=text)
    for index in range(n):
        for role, site in ((None, "output"), ("attn", "attn"), ("mlp", "mlp")):
            if text == _block_path(adapter, index, role):
                return LayerSpec("boundary", site, index, path=text, label=f"block {index}{_ROLE_OF_SITE[site]}")
    return LayerSpec("module", path=text, label=text)
