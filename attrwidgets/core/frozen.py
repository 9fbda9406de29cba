"""The frozen forward: one real forward records what makes a transformer linear in its residual stream.

FrozenForward runs the model once and keeps, per block, the attention weights, the norm scales, the MLP's
real pre-activations and neuron values, and the states at the block's boundaries. With those frozen,
a component stack X of shape (M, T, D) (M components that sum to the real state) propagates through
norms and attention exactly linearly (core/frozen_ops.py), and through an MLP by a split rule
(core/depass/rules.py) or, later, a transcoder. Used by DePass and the attribution graph.

The last component of every stack is the bias component: every bias and norm offset goes there.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import torch

from attrwidgets.core.hooks import own_thread
from attrwidgets.errors import AttrWidgetsError

SUPPORTED = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gpt2", "gemma2", "gemma3", "olmo2", "gpt_neox")


@dataclass(frozen=True)
class NormSpec:
    kind: str  # "rms", "layer", or "none" where the architecture has no norm there (OLMo 2's inputs)
    weight: torch.Tensor  # (D,)
    bias: torch.Tensor | None  # (D,) LayerNorm offset (goes to the bias component)
    eps: float


@dataclass(frozen=True)
class Affine:
    """y = x @ weight.T + bias, weight (out, in): nn.Linear and GPT-2's Conv1D (stored transposed) alike."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    def rows(self, start: int, stop: int) -> Affine:
        return Affine(self.weight[start:stop], None if self.bias is None else self.bias[start:stop])

    def pick(self, index: torch.Tensor) -> Affine:
        return Affine(self.weight[index].contiguous(), None if self.bias is None else self.bias[index])


def affine_of(module) -> Affine:
    weight = module.weight.detach().float()
    if type(module).__name__ == "Conv1D":  # GPT-2: y = x @ W + b with W (in, out)
        weight = weight.t()
    bias = getattr(module, "bias", None)
    return Affine(weight.contiguous(), None if bias is None else bias.detach().float())


def fused_qkv_sizes(config, rows: int) -> tuple[int, int]:
    """(query rows, key or value rows) of a fused q/k/v projection with `rows` outputs: q for every head, then k
    and v for every key/value head (GPT-2: three equal thirds)."""
    heads = int(getattr(config, "num_attention_heads", None) or config.n_head)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = rows // (heads + 2 * kv_heads)
    return heads * head_dim, kv_heads * head_dim


def fused_qkv_rows(adapter, config, rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The row indices of q, k and v in a fused projection with `rows` outputs, each in head order.
    GPT-NeoX lays them out per head ([q | k | v] for head 0, then head 1, ...); GPT-2 and Phi-3 as all q,
    all k, all v (fused_qkv_sizes)."""
    index = torch.arange(rows)
    if adapter.qkv_per_head:
        heads = int(config.num_attention_heads)
        per_head = index.view(heads, 3, rows // (3 * heads))
        return tuple(per_head[:, part].reshape(-1) for part in range(3))
    q_rows, kv_rows = fused_qkv_sizes(config, rows)
    return index[:q_rows], index[q_rows:q_rows + kv_rows], index[q_rows + kv_rows:]


def softcap_ratio(z: torch.Tensor, cap: float | None) -> torch.Tensor:
    """cap * tanh(z / cap) / z: the soft-cap as a scale on the uncapped logits z (1 where z = 0 or no cap)."""
    if not cap:
        return torch.ones_like(z)
    safe = torch.where(z.abs() > 1e-12, z, torch.ones_like(z))
    return torch.where(z.abs() > 1e-12, cap * torch.tanh(safe / cap) / safe, torch.ones_like(z))


def norm_of(module, weight_offset: float = 0.0) -> NormSpec:
    """The frozen form of a norm module; None (no norm there) is the identity. weight_offset: Gemma's norms
    scale by (1 + weight)."""
    if module is None:
        return NormSpec("none", torch.ones(()), None, 0.0)
    if isinstance(module, torch.nn.LayerNorm):
        bias = None if module.bias is None else module.bias.detach().float()
        return NormSpec("layer", module.weight.detach().float(), bias, float(module.eps))
    eps = getattr(module, "variance_epsilon", getattr(module, "eps", None))
    if eps is None or not hasattr(module, "weight"):
        raise AttrWidgetsError(f"Cannot freeze norm {type(module).__name__}: expected an RMSNorm or a LayerNorm.")
    return NormSpec("rms", module.weight.detach().float() + weight_offset, None, float(eps))


def norm_scale(spec: NormSpec, x: torch.Tensor) -> torch.Tensor:
    """x (T, D) real state -> (T,) the scale the norm applies, frozen for every component."""
    x = x.float()
    if spec.kind == "none":
        return torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device)
    if spec.kind == "layer":
        return torch.rsqrt(x.var(-1, unbiased=False) + spec.eps)
    return torch.rsqrt(x.pow(2).mean(-1) + spec.eps)


@dataclass
class BlockRecord:
    """What one real forward saw in block l (positions 0..T-1)."""

    x_in: torch.Tensor  # (T, D) block input
    mid: torch.Tensor  # (T, D) after attention + residual
    mlp_reads: torch.Tensor  # (T, D) the stream the MLP's norm reads: mid, or x_in where they run in parallel
    attn_out: torch.Tensor  # (T, D) attention output as added to the stream (biases, post-norm included)
    mlp_out: torch.Tensor  # (T, D) MLP output as added to the stream
    attention: torch.Tensor  # (H, T, T) weights, rows queries
    preact: torch.Tensor  # (T, I) real pre-activation of the neurons (gate for gated MLPs)
    values: torch.Tensor  # (T, I) real neuron values, the input of the MLP's output projection
    scale_attn: torch.Tensor  # (T,) frozen scale of the pre-attention norm
    scale_mlp: torch.Tensor  # (T,) frozen scale of the pre-MLP norm
    # (T, D) the frozen post-norm of the attention / MLP output (Gemma, OLMo 2): its scale at each position
    # times its weight, a diagonal map per position; None where the architecture has none.
    post_attn: torch.Tensor | None = None
    post_mlp: torch.Tensor | None = None


class FrozenForward:
    """One real forward of `input_ids` (T,) and everything the linear propagation needs."""

    def __init__(self, handle, input_ids: torch.Tensor):
        adapter = handle.adapter
        if adapter.name not in SUPPORTED or not adapter.causal:
            raise AttrWidgetsError(
                f"The frozen forward (DePass, head contributions, attribution graphs) supports causal LMs "
                f"({', '.join(SUPPORTED)}); {adapter.name!r} is not one of them."
            )
        self.handle, self.adapter, self.model = handle, adapter, handle.model
        self.input_ids = input_ids.detach().cpu()
        self.n_layers = adapter.n_layers(self.model)
        self.blocks: list[BlockRecord] = []
        self._capture()

    # -- module maps (float32 copies; small next to the activations) ---------------------------------
    def block(self, layer: int):
        return self.adapter.get(self.model, self.adapter.blocks)[layer]

    def _module(self, path: str, layer: int):
        return self.adapter.get(self.model, path, block=layer)

    def _norm(self, path: str | None, layer: int | None = None) -> NormSpec:
        module = None if path is None else self.adapter.get(self.model, path, block=layer)
        return norm_of(module, self.adapter.norm_weight_offset)

    def norm_attn(self, layer: int) -> NormSpec:
        return self._norm(self.adapter.norm_attn, layer)

    def norm_mlp(self, layer: int) -> NormSpec:
        return self._norm(self.adapter.norm_mlp, layer)

    def final_norm(self) -> NormSpec:
        return self._norm(self.adapter.final_norm)

    def value_map(self, layer: int) -> Affine:
        """(KV * head_dim, D): the value projection; where q/k/v are fused (GPT-2, Phi-3, GPT-NeoX), its value
        rows in head order."""
        if self.adapter.v_proj is not None:
            return affine_of(self._module(self.adapter.v_proj, layer))
        fused = affine_of(self._module(self.adapter.qkv_fused, layer))
        return fused.pick(fused_qkv_rows(self.adapter, self.model.config, fused.weight.shape[0])[2])

    def out_map(self, layer: int) -> Affine:
        return affine_of(self._module(self.adapter.o_proj, layer))

    def mlp_in_map(self, layer: int) -> Affine:
        """The projection whose output the split rule compares (the gate of a gated MLP)."""
        affine = affine_of(self._module(self.adapter.mlp_in, layer))
        if self.adapter.gate_up_fused:  # Phi-3: [gate, up] in one projection
            return affine.rows(0, affine.weight.shape[0] // 2)
        return affine

    def mlp_out_map(self, layer: int) -> Affine:
        return affine_of(self._module(self.adapter.mlp_out, layer))

    def unembedding(self) -> Affine:
        return affine_of(self.adapter.lm_head(self.model))

    @property
    def n_heads(self) -> int:
        return int(self.blocks[0].attention.shape[0])

    @property
    def head_dim(self) -> int:
        return self.out_map(0).weight.shape[1] // self.n_heads

    @property
    def n_kv_heads(self) -> int:
        return self.value_map(0).weight.shape[0] // self.head_dim

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])

    # -- the one real forward ----------------------------------------------------------------------
    @torch.no_grad()
    def _capture(self) -> None:
        a, model = self.adapter, self.model
        if getattr(model.config, "_attn_implementation", "eager") != "eager":
            model.set_attn_implementation("eager")  # sdpa returns no weights (docs/architecture.md)
        seen: dict[tuple[str, int], torch.Tensor] = {}
        hooks = []
        # Hooks belong to the module, not to this call: a live widget's worker thread may run the same model
        # meanwhile (a TokenMatrix and a HeadGrid on one model). Record only this thread's forward.
        owner = threading.get_ident()

        def keep(name, layer, value) -> None:
            if threading.get_ident() == owner:
                seen[(name, layer)] = value[0].detach().float()

        def keep_input(name, layer):
            # Blocks and OLMo 2's attention take the stream as a keyword in some versions: read either.
            return lambda mod, args, kwargs: keep(name, layer, args[0] if args else kwargs["hidden_states"])

        def keep_output(name, layer):
            return lambda mod, args, out: keep(name, layer, out[0] if isinstance(out, tuple) else out)

        def pre(module, name, layer):
            hooks.append(module.register_forward_pre_hook(own_thread(keep_input(name, layer)), with_kwargs=True))

        def post(module, name, layer):
            hooks.append(module.register_forward_hook(own_thread(keep_output(name, layer))))

        with contextlib.ExitStack() as stack:
            for layer in range(self.n_layers):
                pre(self.block(layer), "x_in", layer)
                if not a.parallel:  # the stream after attention: what the MLP's norm (or the MLP) reads
                    pre(self._module(a.norm_mlp or a.mlp, layer), "mid", layer)
                pre(self._module(a.mlp_out, layer), "values", layer)
                for name, path in (("attn_out", a.attn), ("mlp_out", a.mlp), ("preact", a.mlp_in)):
                    post(self._module(path, layer), name, layer)
            pre(a.get(model, a.final_norm), "final_in", 0)
            for h in hooks:
                stack.callback(h.remove)
            ids = self.input_ids.to(self.handle.device).unsqueeze(0)
            out = a.base(model)(input_ids=ids, output_attentions=True, use_cache=False)
        if not out.attentions or out.attentions[0] is None:
            raise AttrWidgetsError("The model returned no attention weights: load it with attn_implementation='eager'.")
        causal = torch.ones(self.length, self.length, dtype=torch.bool, device=out.attentions[0].device).tril()
        for layer in range(self.n_layers):
            # Masked entries are exactly 0 after softmax in fp32; in half precision make sure of it, since
            # causality of the decomposition rests on them.
            attention = (out.attentions[layer][0].float() * causal).detach()
            x_in = seen[("x_in", layer)]
            attn_out, post_attn = self._post_normed(a.post_norm_attn, layer, seen[("attn_out", layer)])
            mlp_out, post_mlp = self._post_normed(a.post_norm_mlp, layer, seen[("mlp_out", layer)])
            mid = x_in + attn_out if a.parallel else seen[("mid", layer)]
            mlp_reads = x_in if a.parallel else mid
            preact = seen[("preact", layer)]
            if a.gate_up_fused:  # the gate's half of the fused projection's output
                preact = preact[:, : preact.shape[1] // 2].contiguous()
            self.blocks.append(BlockRecord(
                x_in=x_in, mid=mid, mlp_reads=mlp_reads, attn_out=attn_out, mlp_out=mlp_out,
                attention=attention, preact=preact, values=seen[("values", layer)],
                scale_attn=norm_scale(self.norm_attn(layer), x_in),
                scale_mlp=norm_scale(self.norm_mlp(layer), mlp_reads), post_attn=post_attn, post_mlp=post_mlp,
            ))
        self.final_in = seen[("final_in", 0)]  # (T, D) residual stream after the last block
        self.final_scale = norm_scale(self.final_norm(), self.final_in)
        self.final_out = out.last_hidden_state[0].detach().float()  # (T, D) after the final norm

    def _post_normed(self, path: str | None, layer: int, raw: torch.Tensor):
        """A sublayer's output as added to the stream, and the frozen post-norm that made it (None: none)."""
        if path is None:
            return raw, None
        spec = self._norm(path, layer)
        post = norm_scale(spec, raw).unsqueeze(-1) * spec.weight  # (T, D)
        return raw * post, post

    # -- boundaries ----------------------------------------------------------------------------------
    def block_output(self, layer: int) -> torch.Tensor:
        """(T, D) residual stream after block `layer`."""
        return self.blocks[layer + 1].x_in if layer + 1 < self.n_layers else self.final_in

    def prefix(self, length: int) -> FrozenForward:
        """The same records cut to the first `length` positions: exact for a causal model, no new forward."""
        if length == self.length:
            return self
        cut = object.__new__(FrozenForward)
        cut.__dict__.update(self.__dict__)
        cut.input_ids = self.input_ids[:length]
        cut.blocks = [BlockRecord(**{
            name: (value[:, :length, :length] if name == "attention" else None if value is None else value[:length])
            for name, value in vars(block).items()
        }) for block in self.blocks]
        cut.final_in, cut.final_scale, cut.final_out = (self.final_in[:length], self.final_scale[:length],
                                                        self.final_out[:length])
        return cut

    def real_logits(self, position: int) -> torch.Tensor:
        """(V,) the model's logits at `position`, soft-capped where the model caps them."""
        with torch.no_grad():
            head = self.adapter.lm_head(self.model)
            x = self.final_out[position].to(self.handle.device, next(head.parameters()).dtype)
            return self.adapter.logits(self.model, x).float().cpu()

    def logit_scale(self, position: int) -> torch.Tensor:
        """(V,) what the final soft-cap (Gemma 2) multiplies each logit by at `position`: cap * tanh(z / cap) / z,
        frozen like a norm's scale, so a decomposition of the head's output z times it sums to the capped
        logit. All ones for a model without a cap."""
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if not cap:
            return torch.ones(self.unembedding().weight.shape[0])
        with torch.no_grad():
            head = self.adapter.lm_head(self.model)
            z = head(self.final_out[position].to(self.handle.device, next(head.parameters()).dtype)).float().cpu()
        return softcap_ratio(z, cap)
