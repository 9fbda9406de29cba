"""Layer integrated gradients during generation (docs/methods/dlig.md): IG at any layer's output.

h = the layer's output on the sequence, h' = its output on the baseline sequence (or 0, or a tensor), and
the forward RESUMES after that layer with h' + a (h - h') (core/boundaries.py): it is never re-run from the
embeddings with a hidden state, the upstream bug. Targets, batching over path points, quadratures and the
completeness report are token IG's (core/token/methods/integrated_gradients.py integrate_path): only the space
the path runs in changes. At the embeddings with the "pad" baseline it is token IG on inputs_embeds.

Scores are the L2 norm over D of each position's IG (DLIG's per-token score); the signed sum is kept in
Attribution.signed_scores, the per-dimension values in per_dim on request.
"""

from __future__ import annotations

import numpy as np
import torch

from attrwidgets.core.boundaries import Boundaries
from attrwidgets.core.dlig.layers import LayerSpec, resolve_layer
from attrwidgets.core.forward import TargetFunction
from attrwidgets.core.hooks import own_thread
from attrwidgets.core.token.methods.integrated_gradients import integrate_path
from attrwidgets.core.token.registry import MethodOutput, register
from attrwidgets.errors import AttrWidgetsError

BASELINES = ("prompt_pad", "pad", "zero")
DEFAULTS = {
    "layer": None,  # a role ("block 10", "block 10 attn", "embeddings") or a module path; None = block 10 (or the middle one)
    "n_steps": 128,
    "baseline": "prompt_pad",
    "quadrature": "adaptive",
    "objective": "log_prob",
    "aggregate": "l2",
    "per_dim": False,
    "batch_size": None,
    "tol": 0.005,
}


class LayerTargetFunction(TargetFunction):
    """The same targets as `fn`, as a function of one layer's output instead of the input embeddings."""

    def __init__(self, fn: TargetFunction, spec: LayerSpec):
        self.__dict__.update(fn.__dict__)
        self.spec = spec
        self.bounds = Boundaries(self.handle, self.input_ids) if spec.kind == "boundary" else None
        self.module = self.handle.model.get_submodule(spec.path) if spec.kind == "module" else None

    def state_of(self, ids: torch.Tensor) -> torch.Tensor:
        """(T, D) the layer's output on token ids (T,), no grad."""
        with torch.no_grad():
            if self.spec.kind == "embeddings":
                return self.adapter.embedding(self.model)(ids.to(self.device)).detach()
            if self.spec.kind == "boundary":
                bounds = self.bounds if torch.equal(ids.cpu(), self.input_ids.cpu()) else Boundaries(self.handle, ids)
                return bounds.state(self.spec.site, self.spec.layer)
            seen = {}

            def keep(module, args, out):  # returns None: a forward hook's return value replaces the output
                seen["h"] = _first(out)[0].detach()

            hook = self.module.register_forward_hook(own_thread(keep))
            try:
                self.adapter.base(self.model)(input_ids=ids.to(self.device).unsqueeze(0), use_cache=False)
            finally:
                hook.remove()
            return seen["h"]

    def embeds(self) -> torch.Tensor:
        return self.state_of(self.input_ids)

    def values(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.kind == "embeddings":
            return super().values(x)  # the input embeddings: exactly token IG's function
        if self.spec.kind == "boundary":
            logits = self.bounds.run_from(self.spec.site, self.spec.layer, x.to(self.dtype), self.pred_positions)
            return self.select(logits)

        def replace(module, args, out):  # any other module: substitute its output in a whole forward
            return (x.to(_first(out).dtype),) + tuple(out[1:]) if isinstance(out, tuple) else x.to(out.dtype)

        hook = self.module.register_forward_hook(own_thread(replace))
        try:
            ids = self.input_ids.unsqueeze(0).expand(x.shape[0], -1)
            hidden = self.adapter.base(self.model)(input_ids=ids, use_cache=False).last_hidden_state
        finally:
            hook.remove()
        return self.select(self.adapter.logits(self.model, hidden[:, self.pred_positions]))


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def pad_token_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, getattr(tokenizer, "mask_token_id", None), tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    raise AttrWidgetsError("This tokenizer has no pad, mask or eos token for a 'pad' baseline: use baseline='zero'.")


def layer_baseline(fn: LayerTargetFunction, baseline, h: torch.Tensor, replace_id: int | None = None) -> torch.Tensor:
    """h' for a baseline name or tensor; prompt_pad/pad run the layer on a sequence with tokens replaced."""
    if isinstance(baseline, (torch.Tensor, np.ndarray)):
        b = torch.as_tensor(baseline, dtype=h.dtype, device=h.device)
        if b.shape == h.shape[-1:]:
            return b.expand_as(h).clone()
        if b.shape == h.shape:
            return b.clone()
        raise AttrWidgetsError(f"A baseline tensor must be (D,) or (T, D) = {tuple(h.shape)}; got {tuple(b.shape)}.")
    if baseline == "zero":
        return torch.zeros_like(h)
    if baseline not in ("prompt_pad", "pad"):
        raise AttrWidgetsError(f"Unknown baseline {baseline!r}: use one of {', '.join(BASELINES)}, or a tensor.")
    ids = fn.input_ids.clone()
    replace = pad_token_id(fn.handle.tokenizer) if replace_id is None else replace_id
    # prompt_pad (DLIG's): every prompt position, special tokens included; generated positions are kept.
    stop = max(fn.n_prompt, 1) if baseline == "prompt_pad" else len(ids)
    ids[:stop] = replace
    return fn.state_of(ids).to(h.dtype)


@register(
    "layer_integrated_gradients",
    defaults=DEFAULTS,
    cheap=False,
    summary="integrated gradients at any layer's output (option layer), resuming the forward after it",
)
def layer_integrated_gradients(fn, options, progress=None) -> MethodOutput:
    spec = resolve_layer(fn.handle, options["layer"])
    lfn = LayerTargetFunction(fn, spec)
    h = lfn.embeds().float()
    out = integrate_path(lfn, h, layer_baseline(lfn, options["baseline"], h).float(), options, progress)
    out.info["layer"] = spec.label
    return out
