"""Dream and LLaDA checkpoints loaded through our own code, never their remote code (docs/methods/dlig.md, "Dream and
LLaDA without remote code").

Both ship their modelling code beside the weights (config.json's auto_map), which transformers runs only with
trust_remote_code, and which this package never runs or needs. Their computations are transformers models that
exist already: Dream's is Qwen2's (q/k/v biases, RMSNorm, rotary, SwiGLU MLP) and the "llama" block of LLaDA's
OLMo-derived code is Llama's, each with full attention. A folder in either published layout is recognised from its
config.json, the config is translated into that transformers config, the weights are renamed while they load
(from_pretrained's key_mapping) and the model attends both ways:
  - config.is_causal = False: transformers' masking_utils.create_causal_mask then builds create_bidirectional_mask's
    mask, so the eager mask (and a padding mask) lets every position see every other;
  - every attention module's is_causal = False: SDPA's own causal flag, used where no mask is materialised.
Dream keeps the shift of the autoregressive model it started from: the logits at position p - 1 predict the token
at p (its sampler shifts them right by one). DreamAsQwen2 returns them shifted, so logits[:, p] predict p as
aw.dlig expects, and its adapter says so (next_token_logits) to layer IG, which runs the LM head itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from attrwidgets.core.adapters import ADAPTERS, ArchitectureAdapter
from attrwidgets.errors import AttrWidgetsError

# configuration_dream.py's DreamConfig defaults: what Dream's own code uses for a field config.json leaves out.
DREAM_DEFAULTS = {"vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32,
                  "num_attention_heads": 32, "num_key_value_heads": 32, "hidden_act": "silu",
                  "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
                  "rope_theta": 10000.0, "rope_scaling": None, "mask_token_id": 151666, "pad_token_id": 151643}
# configuration_llada.py's ModelConfig defaults (OLMo's), for the fields read here.
LLADA_DEFAULTS = {"d_model": 768, "n_heads": 12, "n_kv_heads": None, "multi_query_attention": None, "n_layers": 12,
                  "mlp_ratio": 4, "mlp_hidden_size": None, "activation_type": "swiglu", "block_type": "sequential",
                  "block_group_size": 1, "alibi": False, "rope": False, "attention_layer_norm": False,
                  "input_emb_norm": False, "layer_norm_type": "default", "layer_norm_with_affine": True,
                  "rms_norm_eps": 1e-5, "max_sequence_length": 1024, "rope_theta": 10000.0, "include_qkv_bias": False,
                  "include_bias": False, "bias_for_layer_norm": None, "scale_logits": False, "vocab_size": 50257,
                  "embedding_size": 50304, "weight_tying": True, "eos_token_id": 50256, "pad_token_id": 50256,
                  "mask_token_id": 50256}
# What the published LLaDA checkpoints set, where another value computes something this translation does not.
LLADA_REQUIRED = {"block_type": "llama", "activation_type": "silu", "layer_norm_type": "rms", "rope": True,
                  "alibi": False, "block_group_size": 1, "attention_layer_norm": False, "input_emb_norm": False,
                  "scale_logits": False, "include_bias": False, "include_qkv_bias": False, "layer_norm_with_affine": True}


def _attend_both_ways(model) -> None:
    for layer in model.model.layers:
        layer.self_attn.is_causal = False  # SDPA's flag where no mask is built; config.is_causal covers the masks


class DreamAsQwen2(Qwen2ForCausalLM):
    """Dream's computation on transformers' Qwen2 modules: bidirectional, logits shifted so logits[:, p] predict p."""

    def __init__(self, config):
        super().__init__(config)
        _attend_both_ways(self)

    def forward(self, *args, **kwargs):
        if kwargs.get("labels") is not None or kwargs.get("logits_to_keep"):
            raise AttrWidgetsError("A Dream model gives its (shifted) logits at every position: labels= and "
                                   "logits_to_keep= are not supported.")
        out = super().forward(*args, **{**kwargs, "return_dict": True})
        # Dream's sampler: logits = cat([logits[:, :1], logits[:, :-1]]): position p is predicted at p - 1.
        out.logits = torch.cat([out.logits[:, :1], out.logits[:, :-1]], dim=1)
        return out


class LLaDAAsLlama(LlamaForCausalLM):
    """LLaDA's "llama" block computation on transformers' Llama modules, bidirectional; logits[:, p] predict p."""

    def __init__(self, config):
        super().__init__(config)
        _attend_both_ways(self)


def _checked(title: str, config: dict, required: dict) -> None:
    for field, wanted in required.items():
        if config.get(field) != wanted:
            raise AttrWidgetsError(
                f"This {title} config.json has {field}={config.get(field)!r}; attrwidgets loads the {title} layout "
                f"with {field}={wanted!r} (the published checkpoints' value): another one computes something else.")


def _dream_config(raw: dict) -> Qwen2Config:
    c = {**DREAM_DEFAULTS, **raw}
    _checked("Dream", c, {"rope_scaling": None})
    return Qwen2Config(
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], intermediate_size=c["intermediate_size"],
        num_hidden_layers=c["num_hidden_layers"], num_attention_heads=c["num_attention_heads"],
        num_key_value_heads=c["num_key_value_heads"] or c["num_attention_heads"], hidden_act=c["hidden_act"],
        max_position_embeddings=c["max_position_embeddings"], rms_norm_eps=c["rms_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": float(c["rope_theta"])},
        tie_word_embeddings=c["tie_word_embeddings"],
        use_sliding_window=False,  # Dream's attention never applies a window, whatever the config says
        pad_token_id=c["pad_token_id"], bos_token_id=c.get("bos_token_id"), eos_token_id=c.get("eos_token_id"),
        mask_token_id=c["mask_token_id"], dtype=c.get("torch_dtype", c.get("dtype")))


def _llada_config(raw: dict) -> LlamaConfig:
    c = {**LLADA_DEFAULTS, **raw}
    c["bias_for_layer_norm"] = c["include_bias"] if c["bias_for_layer_norm"] is None else c["bias_for_layer_norm"]
    _checked("LLaDA", c, {**LLADA_REQUIRED, "bias_for_layer_norm": False})
    kv_heads = c["n_kv_heads"] or (1 if c["multi_query_attention"] else c["n_heads"])  # ModelConfig.effective_n_kv_heads
    return LlamaConfig(
        vocab_size=c["embedding_size"] or c["vocab_size"],  # the embedding and the output head have embedding_size rows
        hidden_size=c["d_model"], intermediate_size=c["mlp_hidden_size"] or c["mlp_ratio"] * c["d_model"],
        num_hidden_layers=c["n_layers"], num_attention_heads=c["n_heads"], num_key_value_heads=kv_heads,
        hidden_act="silu", max_position_embeddings=c["max_sequence_length"], rms_norm_eps=c["rms_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": float(c["rope_theta"])},
        attention_bias=False, mlp_bias=False, tie_word_embeddings=c["weight_tying"],
        pad_token_id=c["pad_token_id"], bos_token_id=c.get("bos_token_id"), eos_token_id=c["eos_token_id"],
        mask_token_id=c["mask_token_id"], dtype=c.get("torch_dtype", c.get("dtype")))


@dataclass(frozen=True)
class Layout:
    """One published layout: how its config.json names it, what it is built as, how its weights are named."""

    name: str  # the handle's adapter name
    title: str  # as its authors write it
    model_type: str  # config.json's model_type, lower-cased
    architecture: str  # config.json's architectures entry
    remote_module: str  # the modelling file its auto_map names
    base: str  # the ADAPTERS entry whose module map the built model has
    build: type  # our model class (its forward gives logits[:, p] for position p)
    translate: Callable[[dict], object]  # config.json -> the transformers config it is built from
    next_token_logits: bool = False  # the head reads position p - 1 for the token at p (Dream)
    # (published name, ours) for module paths: top-level ones, then per block (the block prefix first)
    top: tuple[tuple[str, str], ...] = ()
    blocks: tuple[str, str] = ("model.layers", "model.layers")
    per_block: tuple[tuple[str, str], ...] = ()
    # the transformers tokenizer class for the same files, where the layout's own tokenizer class is remote code
    tokenizer: str = "PreTrainedTokenizerFast"

    def adapter(self) -> ArchitectureAdapter:
        return replace(ADAPTERS[self.base], name=self.name, causal=False, next_token_logits=self.next_token_logits)

    def key_mapping(self) -> dict[str, str]:
        """Published weight names -> ours, as from_pretrained's key_mapping (regex -> replacement)."""
        (theirs, ours) = self.blocks
        mapping = {rf"^{_re(a)}\.": f"{b}." for a, b in self.top}
        mapping.update({rf"^{_re(theirs)}\.(\d+)\.{_re(a)}\.": rf"{ours}.\1.{b}." for a, b in self.per_block})
        return mapping

    def published(self, key: str) -> str:
        """Our weight name -> the published one (to name a missing weight as the checkpoint would)."""
        for a, b in self.top:
            if key.startswith(b + "."):
                return a + key[len(b):]
        (theirs, ours) = self.blocks
        if key.startswith(ours + "."):
            index, _, rest = key[len(ours) + 1:].partition(".")
            for a, b in self.per_block:
                if rest.startswith(b + "."):
                    return f"{theirs}.{index}.{a}{rest[len(b):]}"
        return key


def _re(text: str) -> str:
    return text.replace(".", r"\.")


LAYOUTS = (
    # Dream-org/Dream-v0-Base-7B: DreamModel (modeling_dream.py) has Qwen2ForCausalLM's module names.
    Layout(name="dream", title="Dream", model_type="dream", architecture="DreamModel", remote_module="modeling_dream",
           base="qwen2", build=DreamAsQwen2, translate=_dream_config, next_token_logits=True,
           tokenizer="Qwen2Tokenizer"),
    # GSAI-ML/LLaDA-8B-Base: LLaDAModelLM (modeling_llada.py, OLMo-derived), block_type "llama".
    Layout(name="llada", title="LLaDA", model_type="llada", architecture="LLaDAModelLM",
           remote_module="modeling_llada", base="llama", build=LLaDAAsLlama, translate=_llada_config,
           top=(("model.transformer.wte", "model.embed_tokens"), ("model.transformer.ln_f", "model.norm"),
                ("model.transformer.ff_out", "lm_head")),
           blocks=("model.transformer.blocks", "model.layers"),
           per_block=(("attn_norm", "input_layernorm"), ("q_proj", "self_attn.q_proj"),
                      ("k_proj", "self_attn.k_proj"), ("v_proj", "self_attn.v_proj"),
                      ("attn_out", "self_attn.o_proj"), ("ff_norm", "post_attention_layernorm"),
                      # LLaDALlamaBlock: ff_out(act(ff_proj(x)) * up_proj(x)): ff_proj is the gate
                      ("ff_proj", "mlp.gate_proj"), ("up_proj", "mlp.up_proj"), ("ff_out", "mlp.down_proj"))),
)
SUPPORTED = ", ".join(f"{layout.title} (model_type {layout.model_type!r}, {layout.architecture})" for layout in LAYOUTS)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # no such file, or not JSON: load_model's own path reports it
    return data if isinstance(data, dict) else None


def _remote_modules(config: dict) -> list[str]:
    """The modelling files config.json's auto_map names ("modeling_dream.DreamModel" -> "modeling_dream")."""
    names = []
    for value in (config.get("auto_map") or {}).values():
        for entry in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(entry, str):
                names.append(entry.split("--")[-1].split(".")[0])  # "org/repo--modeling_x.Class" names another repo
    return names


def read_config(name_or_path) -> dict | None:
    """A local folder's config.json; None for a hub id, or a folder without a readable one (load_model says why)."""
    folder = Path(name_or_path).expanduser()
    return _read_json(folder / "config.json") if folder.is_dir() else None


def layout_of(config: dict) -> Layout | None:
    """The published layout config.json names by its model_type, architectures or auto_map; None for any other."""
    archs = config.get("architectures") or []
    for layout in LAYOUTS:
        if (str(config.get("model_type", "")).lower() == layout.model_type or layout.architecture in archs
                or layout.remote_module in _remote_modules(config)):
            return layout
    return None


def load_diffusion_layout(name_or_path: str, *, masked_lm: bool, trust_remote_code: bool, dtype):
    """(model, tokenizer, adapter) for a local folder in a published Dream or LLaDA layout; None for any other
    folder. A folder whose config names remote code attrwidgets does not know is an error unless trust_remote_code."""
    folder, config = Path(name_or_path).expanduser(), read_config(name_or_path)
    if config is None:
        return None
    layout = layout_of(config)
    if layout is None:
        if _remote_modules(config) and not trust_remote_code:
            raise AttrWidgetsError(
                f"{name_or_path!r} names remote code ({', '.join(sorted(set(_remote_modules(config))))}) that attrwidgets "
                f"does not run. Layouts it loads through its own code instead (aw.load_model(path, masked_lm=True)): "
                f"{SUPPORTED}. Pass trust_remote_code=True to run the folder's own code (layer IG then needs an "
                "ArchitectureAdapter entry for its module names, core/adapters.py).")
        return None
    if not masked_lm:
        raise AttrWidgetsError(f"{name_or_path!r} is a masked-diffusion LM in the {layout.title} layout, not a causal "
                               "LM: load it with aw.load_model(path, masked_lm=True) for aw.dlig.")
    try:
        translated = layout.translate(config)  # refuses values it does not compute (AttrWidgetsError)
    except (TypeError, StrictDataclassError) as exc:  # a field of a wrong type (transformers' configs are strict)
        raise AttrWidgetsError(f"{name_or_path!r}: its {layout.title} config.json does not translate: {exc}") from exc
    model = _load_weights(layout, folder, translated, dtype)
    try:
        tokenizer = _tokenizer(layout, folder)
    except (OSError, ValueError) as exc:
        raise AttrWidgetsError(f"Could not load the {layout.title} tokenizer in {name_or_path!r}: {exc}") from exc
    _check_mask_token(layout, name_or_path, tokenizer, model.config)
    return model, tokenizer, layout.adapter()


def _load_weights(layout: Layout, folder: Path, config, dtype):
    from transformers import GenerationConfig

    config.is_causal = False  # create_causal_mask -> create_bidirectional_mask (transformers' masking_utils)
    # The folder's generation_config.json holds its own sampler's settings (Dream: alg, steps), not generate()'s.
    ids = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
                           pad_token_id=config.pad_token_id)
    try:
        model, info = layout.build.from_pretrained(
            folder, config=config, key_mapping=layout.key_mapping() or None, dtype=dtype, attn_implementation="eager",
            generation_config=ids, output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as exc:  # unreadable weights, or shapes config.json does not give
        raise AttrWidgetsError(f"Could not load the {layout.title} weights in {str(folder)!r} (unreadable, or shaped "
                               f"otherwise than its config.json says): {exc}") from exc
    missing = sorted(layout.published(k) for k in info["missing_keys"])
    if missing:
        raise AttrWidgetsError(
            f"{str(folder)!r} lacks the weight {missing[0]!r} of the {layout.title} layout"
            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}: the checkpoint is incomplete, or in "
            "another layout.")
    unexpected = sorted(info["unexpected_keys"])
    if unexpected:  # a weight the translation would drop: the checkpoint computes something else
        raise AttrWidgetsError(f"{str(folder)!r} has the weight {unexpected[0]!r}, which the {layout.title} layout "
                               "has not: the checkpoint is in another layout.")
    return model


def _tokenizer(layout: Layout, folder: Path):
    """The tokenizer through the transformers class its tokenizer_config.json names (LLaDA's), or, where that class
    is remote code (Dream's DreamTokenizer: Qwen2's byte-level BPE and pre-tokenizer), the transformers class it
    derives from. Never AutoTokenizer: it reads config.json's remote AutoConfig first."""
    import transformers

    settings = _read_json(folder / "tokenizer_config.json") or {}
    named = settings.get("tokenizer_class")
    remote = "AutoTokenizer" in (settings.get("auto_map") or {})
    cls = named if named and not remote and hasattr(transformers, named) else layout.tokenizer
    return getattr(transformers, cls).from_pretrained(folder)


def _check_mask_token(layout: Layout, name: str, tokenizer, config) -> None:
    """aw.dlig takes the tokenizer's mask token first, then config.mask_token_id: they must agree where both exist."""
    from_tokenizer, from_config = getattr(tokenizer, "mask_token_id", None), getattr(config, "mask_token_id", None)
    if from_tokenizer is not None and from_config is not None and from_tokenizer != from_config:
        raise AttrWidgetsError(
            f"{name!r}: the tokenizer's mask token {tokenizer.mask_token!r} is id {from_tokenizer} but config.json's "
            f"mask_token_id is {from_config}; the {layout.title} model denoises one of them. Make its config.json "
            "and tokenizer_config.json agree.")
