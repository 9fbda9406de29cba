"""Per-architecture module map: one table, so methods never branch on the architecture.

Paths are dotted attribute paths from the top-level HF model; "{i}" stands for the block index.
A path of None means the architecture has no such module (BERT has no final norm or LM head).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from attrwidgets.errors import AttrWidgetsError


@dataclass(frozen=True)
class ArchitectureAdapter:
    name: str
    base_model: str  # the transformer body; its last_hidden_state is already final-normed
    embed_tokens: str
    position_embeddings: str | None  # learned absolute positions (gpt2, bert); None for rotary models
    blocks: str  # the ModuleList of blocks
    attn: str  # relative to a block
    q_proj: str | None  # relative to a block; None where q/k/v are fused (see qkv_fused)
    k_proj: str | None
    v_proj: str | None
    qkv_fused: str | None
    o_proj: str
    mlp: str
    mlp_in: str  # the projection(s) that read the MLP input
    mlp_out: str
    norm_attn: str | None  # pre-attention norm (post-attention norm for post-norm BERT); None: OLMo 2 has none
    norm_mlp: str | None
    final_norm: str | None
    unembedding: str | None
    causal: bool = True
    post_norm: bool = False  # BERT: each sublayer's norm comes after its residual add (norm(x + f(x)))
    gate_up_fused: bool = False  # Phi-3: mlp_in is one projection whose output is [gate, up], in halves
    # Gemma 2/3, OLMo 2: a norm on each sublayer's OUTPUT, before its residual add (x + norm(f(x))).
    post_norm_attn: str | None = None
    post_norm_mlp: str | None = None
    parallel: bool = False  # GPT-NeoX (Pythia): x + attn(norm(x)) + mlp(norm'(x)), the MLP reads the block input
    qkv_per_head: bool = False  # GPT-NeoX: the fused q/k/v rows are [q | k | v] per head, not all q, all k, all v
    norm_weight_offset: float = 0.0  # Gemma: its RMSNorms scale by (1 + weight)
    # Dream (core/diffusion_layouts.py): bidirectional, yet the logits at position p - 1 predict the token at p,
    # the shift of the autoregressive model it was initialised from
    next_token_logits: bool = False

    # -- module access -----------------------------------------------------------------------------
    def get(self, model: torch.nn.Module, path: str | None, block: int | None = None):
        if path is None:
            return None
        if path == "":  # a bare body (e.g. BertModel): the model itself
            return model
        if block is not None:
            path = f"{self.blocks}.{block}.{path}"
        module = model
        for part in path.split("."):
            module = module[int(part)] if part.isdigit() else getattr(module, part)
        return module

    def base(self, model):
        return self.get(model, self.base_model)

    def embedding(self, model) -> torch.nn.Embedding:
        return self.get(model, self.embed_tokens)

    def lm_head(self, model):
        return self.get(model, self.unembedding)

    def logits(self, model, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head on final-normed states, with the final soft-cap where the model has one (Gemma 2 caps
        its logits in the CausalLM's forward, after lm_head: a head alone would skip it)."""
        return soft_capped(model, self.lm_head(model)(hidden))

    def n_layers(self, model) -> int:
        return len(self.get(model, self.blocks))

    def max_context(self, model) -> int:
        cfg = model.config
        for key in ("max_position_embeddings", "n_positions", "n_ctx"):
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return 1 << 30

    def boundaries(self, model) -> list[tuple[str, str, str]]:
        """(role, dotted path, module class) rows for every mapped module of block 0 and the ends."""
        rows = []
        per_block = {"attn", "q_proj", "k_proj", "v_proj", "qkv_fused", "o_proj", "mlp", "mlp_in", "mlp_out",
                     "norm_attn", "norm_mlp", "post_norm_attn", "post_norm_mlp"}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "name" or not isinstance(value, str):  # flags and absent modules
                continue
            if f.name in per_block:
                path = f"{self.blocks}.{{i}}.{value}"
                module = self.get(model, value, block=0)
            else:
                path, module = value, self.get(model, value)
            rows.append((f.name, path, type(module).__name__))
        return rows


def soft_capped(model, logits: torch.Tensor) -> torch.Tensor:
    """cap * tanh(logits / cap) where the model caps its final logits (Gemma 2), else the logits."""
    cap = getattr(model.config, "final_logit_softcapping", None)
    return logits if not cap else torch.tanh(logits / cap) * cap


_LLAMA_LIKE = {
    "base_model": "model",
    "embed_tokens": "model.embed_tokens",
    "position_embeddings": None,
    "blocks": "model.layers",
    "attn": "self_attn",
    "q_proj": "self_attn.q_proj",
    "k_proj": "self_attn.k_proj",
    "v_proj": "self_attn.v_proj",
    "qkv_fused": None,
    "o_proj": "self_attn.o_proj",
    "mlp": "mlp",
    "mlp_in": "mlp.gate_proj",
    "mlp_out": "mlp.down_proj",
    "norm_attn": "input_layernorm",
    "norm_mlp": "post_attention_layernorm",
    "final_norm": "model.norm",
    "unembedding": "lm_head",
}

ADAPTERS: dict[str, ArchitectureAdapter] = {
    "llama": ArchitectureAdapter(name="llama", **_LLAMA_LIKE),
    "mistral": ArchitectureAdapter(name="mistral", **_LLAMA_LIKE),
    "qwen2": ArchitectureAdapter(name="qwen2", **_LLAMA_LIKE),
    # Qwen3: Qwen2's map; its q/k RMSNorms only shape the attention pattern, which every method either runs
    # through the model itself or reads as the model computed it (FrozenForward's attention weights).
    "qwen3": ArchitectureAdapter(name="qwen3", **_LLAMA_LIKE),
    "gpt2": ArchitectureAdapter(
        name="gpt2",
        base_model="transformer",
        embed_tokens="transformer.wte",
        position_embeddings="transformer.wpe",
        blocks="transformer.h",
        attn="attn",
        q_proj=None,
        k_proj=None,
        v_proj=None,
        qkv_fused="attn.c_attn",
        o_proj="attn.c_proj",
        mlp="mlp",
        mlp_in="mlp.c_fc",
        mlp_out="mlp.c_proj",
        norm_attn="ln_1",
        norm_mlp="ln_2",
        final_norm="transformer.ln_f",
        unembedding="lm_head",
    ),
    # Phi-3: llama's map with q/k/v fused (q rows, then k, then v: grouped-query sizes) and gate/up fused.
    "phi3": ArchitectureAdapter(name="phi3", **{**_LLAMA_LIKE, "q_proj": None, "k_proj": None, "v_proj": None,
                                                "qkv_fused": "self_attn.qkv_proj", "mlp_in": "mlp.gate_up_proj"},
                                gate_up_fused=True),
    # Gemma 2/3: four norms per block (pre and post, around attention and MLP), each scaling by (1 + w); the
    # sqrt(D) embedding scale sits inside the embedding module; attention soft-capping, sliding windows and
    # per-layer rotary bases only shape the attention pattern (docs/methods/depass.md "Architectures").
    "gemma2": ArchitectureAdapter(name="gemma2", **{**_LLAMA_LIKE, "norm_mlp": "pre_feedforward_layernorm"},
                                  post_norm_attn="post_attention_layernorm",
                                  post_norm_mlp="post_feedforward_layernorm", norm_weight_offset=1.0),
    "gemma3_text": ArchitectureAdapter(name="gemma3", **{**_LLAMA_LIKE, "norm_mlp": "pre_feedforward_layernorm"},
                                       post_norm_attn="post_attention_layernorm",
                                       post_norm_mlp="post_feedforward_layernorm", norm_weight_offset=1.0),
    # OLMo 2: no input norms; each sublayer's output is normed before its residual add.
    "olmo2": ArchitectureAdapter(name="olmo2", **{**_LLAMA_LIKE, "norm_attn": None, "norm_mlp": None},
                                 post_norm_attn="post_attention_layernorm",
                                 post_norm_mlp="post_feedforward_layernorm"),
    # GPT-NeoX (Pythia): attention and MLP in parallel from the block input (use_parallel_residual), fused
    # q/k/v laid out per head, LayerNorms with bias, rotary on part of each head, an untied head.
    "gpt_neox": ArchitectureAdapter(
        name="gpt_neox",
        base_model="gpt_neox",
        embed_tokens="gpt_neox.embed_in",
        position_embeddings=None,
        blocks="gpt_neox.layers",
        attn="attention",
        q_proj=None,
        k_proj=None,
        v_proj=None,
        qkv_fused="attention.query_key_value",
        o_proj="attention.dense",
        mlp="mlp",
        mlp_in="mlp.dense_h_to_4h",
        mlp_out="mlp.dense_4h_to_h",
        norm_attn="input_layernorm",
        norm_mlp="post_attention_layernorm",
        final_norm="gpt_neox.final_layer_norm",
        unembedding="lm_head",
        parallel=True,
        qkv_per_head=True,
    ),
    # BERT is mapped so later views fit it; token attribution during generation needs a causal LM head.
    "bert": ArchitectureAdapter(
        name="bert",
        base_model="bert",
        embed_tokens="bert.embeddings.word_embeddings",
        position_embeddings="bert.embeddings.position_embeddings",
        blocks="bert.encoder.layer",
        attn="attention",
        q_proj="attention.self.query",
        k_proj="attention.self.key",
        v_proj="attention.self.value",
        qkv_fused=None,
        o_proj="attention.output.dense",
        mlp="intermediate",
        mlp_in="intermediate.dense",
        mlp_out="output.dense",
        norm_attn="attention.output.LayerNorm",
        norm_mlp="output.LayerNorm",
        final_norm=None,
        unembedding="cls",  # BertForMaskedLM's head (masked diffusion); a bare BertModel has none
        causal=False,
        post_norm=True,
    ),
}
ENCODERS = ("bert",)


def _bare_body(adapter: ArchitectureAdapter) -> ArchitectureAdapter:
    """The same map for a model that IS the body (AutoModel: BertModel has no `bert.` prefix, no head)."""
    prefix = adapter.base_model + "."
    strip = {f.name: getattr(adapter, f.name)[len(prefix):] for f in fields(adapter)
             if isinstance(getattr(adapter, f.name), str) and getattr(adapter, f.name).startswith(prefix)}
    return replace(adapter, base_model="", unembedding=None, **strip)


def adapter_for(model: torch.nn.Module) -> ArchitectureAdapter:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    adapter = ADAPTERS.get(model_type)
    if adapter is None:
        raise AttrWidgetsError(
            f"Unsupported architecture {model_type!r}. Supported: {', '.join(sorted(ADAPTERS))}. "
            "Add an ArchitectureAdapter entry to attrwidgets.core.adapters.ADAPTERS to map a new one."
        )
    if adapter.base_model and not hasattr(model, adapter.base_model.split(".")[0]):
        if model_type in ENCODERS:
            return _bare_body(adapter)  # e.g. BertModel from AutoModel: the body is the model itself
        raise AttrWidgetsError(
            f"{type(model).__name__} ({model_type}) lacks the `{adapter.base_model}` body this adapter expects: "
            "load it with AutoModelForCausalLM (a model with an LM head)."
        )
    if adapter.parallel and not getattr(model.config, "use_parallel_residual", True):
        adapter = replace(adapter, parallel=False)  # a GPT-NeoX trained with the sequential residual
    return adapter


def describe_boundaries(model) -> str:
    """Print and return the module map of a model (or ModelHandle): role, path, module class."""
    # A handle's own map first: a Dream or LLaDA handle's says causal=False where its model's type says qwen2 / llama.
    own = getattr(model, "adapter", None) if not isinstance(model, torch.nn.Module) else None
    model = getattr(model, "model", model) if not isinstance(model, torch.nn.Module) else model
    adapter = own if isinstance(own, ArchitectureAdapter) else adapter_for(model)
    rows = adapter.boundaries(model)
    width = max(len(r[0]) for r in rows)
    lines = [f"{type(model).__name__} — adapter {adapter.name!r}, {adapter.n_layers(model)} blocks"]
    lines += [f"  {role:<{width}}  {path}  ({cls})" for role, path, cls in rows]
    n = adapter.n_layers(model)
    u = "attention output (after its LayerNorm)" if adapter.post_norm else "block input + attention output"
    lines.append(f"layer IG (aw.layer_ig, aw.dlig) takes layer='embeddings', 'block L' (its output), 'block L attn', "
                 f"'block L mlp' or 'block L input' for L in 0..{n - 1}, or any module path above (i = L);")
    lines.append(f"LIG (aw.lig) uses z = block input, u = {u}, z_next = block output.")
    text = "\n".join(lines)
    print(text)
    return text
