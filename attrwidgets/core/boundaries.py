"""Named boundaries of a model and resuming its forward pass from any of them with a replaced tensor.

One real forward (no grad) records, for every block l, the states at its boundaries:
    "input"  z   the block's input,
    "attn"       the attention output as added to the stream (pre-norm: before the residual add; Gemma and
                 OLMo 2: after its post-norm; BERT: after its LayerNorm),
    "mid"    u   the stream after attention (pre-norm: z + attention; post-norm BERT: LayerNorm(z + attention));
                 the MLP's input side, except where attention and MLP run in parallel (GPT-NeoX: the MLP
                 reads z),
    "mlp"        the MLP output as added to the stream (BERT: its intermediate activations),
    "output"     the block's output (the next block's input),
and the keyword arguments the model passed to the block (rotary tables, masks, cache positions). With those,
`run_block`, `run_tail` and `head_writes` re-run one block (or part of it) on a batch of replaced states,
and `run_from` resumes the whole remaining model: the model is never replayed from the embeddings with a
hidden state (the DLIG/LIG upstream bug, docs/methods/dlig.md). Used by LIG (core/lig/) and by layer IG (DLIG).

Replaying a block with the kwargs the model itself built keeps every architecture detail (rotary, GQA,
causal and padding masks, scaling) in the model's own code. The batch dimension broadcasts: the recorded
masks and rotary tables have batch 1.
"""

from __future__ import annotations

import contextlib
import inspect
import threading

import torch

from attrwidgets.core.hooks import own_thread
from attrwidgets.errors import AttrWidgetsError

SITES = ("input", "attn", "mid", "mlp", "output")


class _Stop(Exception):
    """Raised from a hook to end a block's forward once the wanted tensor is in hand."""

    def __init__(self, value):
        self.value = value


def _first(out):
    if isinstance(out, tuple):
        out = out[0]
    return getattr(out, "last_hidden_state", out)


class Boundaries:
    """One real forward of `input_ids` (T,) with its boundary states and per-block call arguments.

    States are (T, D) in the model's dtype on its device. `extra` are further model inputs
    (token_type_ids for BERT).
    """

    def __init__(self, handle, input_ids: torch.Tensor, **extra):
        self.handle, self.adapter, self.model = handle, handle.adapter, handle.model
        self.input_ids = input_ids.detach().reshape(-1).cpu()
        self.n_layers = self.adapter.n_layers(self.model)
        self.states: dict[tuple[str, int], torch.Tensor] = {}
        self.block_kwargs: list[dict] = [{} for _ in range(self.n_layers)]
        self._capture(extra)

    # -- modules -------------------------------------------------------------------------------------
    def block(self, layer: int):
        return self.adapter.get(self.model, self.adapter.blocks)[layer]

    def module(self, role: str, layer: int):
        return self.adapter.get(self.model, getattr(self.adapter, role), block=layer)

    def mid_module(self, layer: int):
        """The module whose input is the stream after attention: the MLP's norm, or the MLP (OLMo 2)."""
        return self.module("norm_mlp" if self.adapter.norm_mlp else "mlp", layer)

    def norm(self, role: str, layer: int, x: torch.Tensor) -> torch.Tensor:
        """x through the block's norm `role`, or x itself where the architecture has none there."""
        module = self.module(role, layer) if getattr(self.adapter, role) else None
        return x if module is None else module(x)

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def n_heads(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "num_attention_heads", None) or cfg.n_head)

    @property
    def hidden_size(self) -> int:
        return int(self.states[("input", 0)].shape[-1])

    def state(self, site: str, layer: int) -> torch.Tensor:
        if site not in SITES:
            raise AttrWidgetsError(f"Unknown boundary site {site!r}: use one of {', '.join(SITES)}.")
        self.check_layer(layer)
        return self.states[(site, layer)]

    def check_layer(self, layer: int) -> int:
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < self.n_layers:
            raise AttrWidgetsError(
                f"Layer {layer!r} is out of range: this model has {self.n_layers} blocks (0..{self.n_layers - 1})."
            )
        return layer

    # -- the one real forward ----------------------------------------------------------------------
    @torch.no_grad()
    def _capture(self, extra: dict) -> None:
        a = self.adapter
        owner = threading.get_ident()  # a live widget's worker may run the same model meanwhile

        def pre_block(layer):
            def hook(mod, args, kwargs):
                if threading.get_ident() == owner:
                    # Some models pass the mask positionally (GPT-2): name every argument to replay it.
                    bound = inspect.signature(mod.forward).bind(*args, **kwargs).arguments
                    named = dict(bound.pop("kwargs", {}) or {}, **bound)
                    first = next(iter(bound))
                    self.states[("input", layer)] = named.pop(first)[0].detach()
                    self.block_kwargs[layer] = named
            return hook

        def post_block(layer):
            def hook(mod, args, out):
                if threading.get_ident() == owner:
                    self.states[("output", layer)] = _first(out)[0].detach()
            return hook

        def mid_pre(layer):  # pre-norm: the MLP norm's input is z + attention
            def hook(mod, args):
                if threading.get_ident() == owner:
                    self.states[("mid", layer)] = args[0][0].detach()
            return hook

        def module_out(site, layer):  # post-norm BERT: the attention module's output is also the MLP's input
            def hook(mod, args, out):
                if threading.get_ident() == owner:
                    self.states[(site, layer)] = _first(out)[0].detach()
                    if site == "attn" and a.post_norm:
                        self.states[("mid", layer)] = self.states[(site, layer)]
            return hook

        with contextlib.ExitStack() as stack:
            for layer in range(self.n_layers):
                attn_added = self.module("post_norm_attn" if a.post_norm_attn else "attn", layer)
                mlp_added = self.module("post_norm_mlp" if a.post_norm_mlp else "mlp", layer)
                hooks = [self.block(layer).register_forward_pre_hook(own_thread(pre_block(layer)), with_kwargs=True),
                         self.block(layer).register_forward_hook(own_thread(post_block(layer))),
                         attn_added.register_forward_hook(own_thread(module_out("attn", layer))),
                         mlp_added.register_forward_hook(own_thread(module_out("mlp", layer)))]
                if not a.post_norm and not a.parallel:
                    hooks.append(self.mid_module(layer).register_forward_pre_hook(own_thread(mid_pre(layer))))
                for h in hooks:
                    stack.callback(h.remove)
            ids = self.input_ids.to(self.handle.device).unsqueeze(0)
            inputs = {k: v.to(self.handle.device) for k, v in extra.items()}
            # An explicit all-ones mask: pad ids in a baseline sequence are real tokens here, not padding.
            inputs.setdefault("attention_mask", torch.ones_like(ids))
            a.base(self.model)(input_ids=ids, use_cache=False, **inputs)
        if a.parallel:  # no module reads z + attention: it is computed
            for layer in range(self.n_layers):
                self.states[("mid", layer)] = self.states[("input", layer)] + self.states[("attn", layer)]
        missing = [key for key in ((s, l) for l in range(self.n_layers) for s in SITES) if key not in self.states]
        if missing:
            raise AttrWidgetsError(f"The forward pass did not reach boundary {missing[0]}: is the model's forward standard?")

    # -- resuming ------------------------------------------------------------------------------------
    def _kwargs(self, layer: int, batch: int) -> dict:
        kwargs = dict(self.block_kwargs[layer])
        # A padding mask of shape (1, T) (BERT with sdpa) must grow with the batch; 4-D masks broadcast.
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.dim() == 2 and mask.shape[0] == 1 and batch > 1:
            kwargs["attention_mask"] = mask.expand(batch, -1)
        return kwargs

    def run_block(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """Block `layer` on a batch of inputs x (N, T, D) -> outputs (N, T, D)."""
        return _first(self.block(layer)(x, **self._kwargs(layer, x.shape[0])))

    def run_tail(self, layer: int, u: torch.Tensor, residual: bool = True, reads: torch.Tensor | None = None) -> torch.Tensor:
        """From the stream after attention u (N, T, D) to the block's output; position-wise, so T may be 1.

        residual=False drops the MLP's residual connection (upstream LIG's include_residual_connection).
        reads: what the MLP reads where it runs in parallel with attention (GPT-NeoX): the block's input at
        the same positions; by default the recorded one (then T must be the sequence's length).
        """
        a = self.adapter
        if a.post_norm:  # BERT: LayerNorm(out(act(intermediate(u))) + u)
            out = self.module("mlp_out", layer)(self.module("mlp", layer)(u))
            return self.module("norm_mlp", layer)(out + u if residual else out)
        if a.parallel and reads is None:
            if u.shape[1] != self.length:
                raise AttrWidgetsError(f"{a.name!r} runs its MLP on the block's input, in parallel with attention: "
                                       "a tail from the stream after attention alone does not exist at a few positions.")
            reads = self.state("input", layer).unsqueeze(0)
        out = _first(self.module("mlp", layer)(self.norm("norm_mlp", layer, u if reads is None else reads)))
        if a.post_norm_mlp:
            out = self.module("post_norm_mlp", layer)(out)
        return out + u if residual else out

    def run_to_mid(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """From block inputs x (N, T, D) to the MLP's input side u (N, T, D); the MLP never runs."""
        if self.adapter.post_norm:
            module, kind = self.module("attn", layer), "output"
        elif self.adapter.parallel:  # no module reads z + attention: stop at the attention's output, add x
            module, kind = self.module("attn", layer), "residual"
        else:
            module, kind = self.mid_module(layer), "input"

        def stop(mod, args, out=None):
            raise _Stop(args[0] if kind == "input" else _first(out) + x if kind == "residual" else _first(out))

        hook = (module.register_forward_pre_hook(own_thread(stop)) if kind == "input"
                else module.register_forward_hook(own_thread(stop)))
        return self._until(layer, x, hook, "the MLP's input")

    def _until(self, layer: int, x: torch.Tensor, hook, what: str) -> torch.Tensor:
        """Run block `layer` on x until `hook` raises _Stop with the wanted tensor."""
        try:
            self.run_block(layer, x)
        except _Stop as caught:
            return caught.value
        finally:
            hook.remove()
        raise AttrWidgetsError(f"Block {layer} never reached {what}.")

    def head_writes(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """Each head's write into the residual stream from block inputs x (N, T, D): (N, T, H, D).

        The block runs until its output projection; head h's write is its context slice through that
        projection's matching columns, so the writes plus the projection's bias are the attention output.
        Where a post-norm follows (Gemma, OLMo 2) that is the output before it: the norm's scale depends on
        every head at once, so a head's write is taken where the heads still add up.
        """
        o_proj = self.module("o_proj", layer)

        def stop(mod, args):
            raise _Stop(args[0])

        context = self._until(layer, x, o_proj.register_forward_pre_hook(own_thread(stop)), "its output projection")
        weight = o_proj.weight
        if type(o_proj).__name__ == "Conv1D":  # GPT-2 stores (in, out)
            weight = weight.t()
        n, t, width = context.shape  # (N, T, H * head_dim)
        heads = self.n_heads
        per_head = context.view(n, t, heads, width // heads)
        w = weight.view(weight.shape[0], heads, width // heads)  # (D, H, head_dim)
        return torch.einsum("nthe,dhe->nthd", per_head, w)

    def attention_weights(self, layer: int) -> torch.Tensor:
        """(H, T, T) attention weights of block `layer` on the real input, rows queries."""
        captured = {}
        attn = self.module("attn", layer)

        def keep(mod, args, out):
            if isinstance(out, tuple) and len(out) > 1 and isinstance(out[1], torch.Tensor):
                captured["w"] = out[1]

        impl = getattr(self.model.config, "_attn_implementation", "eager")
        if impl != "eager":
            self.model.set_attn_implementation("eager")  # sdpa returns no weights (docs/architecture.md)
        inner = attn.self if hasattr(attn, "self") else attn  # BERT nests the weights one level down
        hook = inner.register_forward_hook(own_thread(keep))
        try:
            with torch.no_grad():
                self.run_block(layer, self.state("input", layer).unsqueeze(0))
        finally:
            hook.remove()
        if "w" not in captured:
            raise AttrWidgetsError("The attention module returned no weights: load the model with attn_implementation='eager'.")
        return captured["w"][0].detach()

    def run_from(self, site: str, layer: int, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Resume after boundary (site, layer) with x (N, T, ...) in place of its state: the model's output
        (logits where the model has an LM head, else the last hidden state), (N, T, V or D), or at
        `positions` only, (N, len(positions), V or D): the head is the costly part on a large vocabulary."""
        self.check_layer(layer)
        if site == "input":
            h, start = x, layer
        elif site == "attn":  # pre-norm: the residual add comes first; BERT's attention output is the MLP input
            h, start = self.run_tail(layer, x if self.adapter.post_norm else self.state("input", layer) + x), layer + 1
        elif site == "mid":
            h, start = self.run_tail(layer, x), layer + 1
        elif site == "mlp":
            h, start = self._after_mlp(layer, x), layer + 1
        elif site == "output":
            h, start = x, layer + 1
        else:
            raise AttrWidgetsError(f"Unknown boundary site {site!r}: use one of {', '.join(SITES)}.")
        for later in range(start, self.n_layers):
            h = self.run_block(later, h)
        if positions is not None:
            h = h[:, positions]
        final = self.adapter.get(self.model, self.adapter.final_norm)
        if final is not None:
            h = final(h)
        return self.adapter.logits(self.model, h) if self.adapter.lm_head(self.model) is not None else h

    def _after_mlp(self, layer: int, m: torch.Tensor) -> torch.Tensor:
        """The block's output from its MLP module's output m (BERT: the intermediate activations)."""
        mid = self.state("mid", layer)
        if self.adapter.post_norm:
            return self.module("norm_mlp", layer)(self.module("mlp_out", layer)(m) + mid)
        return mid + m
