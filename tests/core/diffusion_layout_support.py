"""Tiny random checkpoints in the published Dream and LLaDA layouts, written to disk as their authors ship them, and
an independent forward from their raw tensors (docs/methods/dlig.md, "Dream and LLaDA without remote code").

What "as their authors ship them" means here, from their sources: config.json with the fields of DreamConfig
(configuration_dream.py) / LLaDA's ModelConfig (configuration_llada.py) and their model_type, architectures and
auto_map; the weights under DreamModel's / LLaDAModelLM's state-dict names in model.safetensors; Dream's tokenizer as
vocab.json + merges.txt with a tokenizer_config.json naming its remote DreamTokenizer and the mask token <|mask|>;
LLaDA's as tokenizer.json with <|mdm_mask|> among its tokens and config.json's mask_token_id naming it. Sizes are
tiny (2 layers, width 32, 4 heads, 2 key/value heads); the vocabulary is attrwidgets.testing.tiny_tokenizer's plus
the mask token. The folders also hold remote-code files that raise when imported: loading must never run them.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from attrwidgets.testing import CHATML_TEMPLATE, tiny_tokenizer

LAYOUTS = ("dream", "llada")
WIDTH, LAYERS, HEADS, KV_HEADS, MLP = 32, 2, 4, 2, 64
RAISING = "raise RuntimeError('remote code ran: attrwidgets must load this folder through its own code')\n"


def dream_config(vocab: int, mask_id: int, eos_id: int) -> dict:
    return {
        "architectures": ["DreamModel"], "attention_dropout": 0.0,
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
        "bos_token_id": eos_id, "eos_token_id": eos_id, "hidden_act": "silu", "hidden_size": WIDTH,
        "initializer_range": 0.02, "intermediate_size": MLP, "mask_token_id": mask_id, "max_position_embeddings": 128,
        "max_window_layers": LAYERS, "model_type": "Dream", "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
        "num_key_value_heads": KV_HEADS, "pad_token_id": eos_id, "rms_norm_eps": 1e-6, "rope_scaling": None,
        "rope_theta": 1000000.0, "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "transformers_version": "4.46.2", "use_cache": True, "use_sliding_window": False, "vocab_size": vocab,
    }


def llada_config(vocab: int, mask_id: int, eos_id: int) -> dict:
    return {
        "activation_type": "silu", "alibi": False, "alibi_bias_max": 8.0, "architectures": ["LLaDAModelLM"],
        "attention_dropout": 0.0, "attention_layer_norm": False, "attention_layer_norm_with_affine": True,
        "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig",
                     "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM", "AutoModel": "modeling_llada.LLaDAModelLM"},
        "bias_for_layer_norm": False, "block_group_size": 1, "block_type": "llama", "d_model": WIDTH,
        "embedding_dropout": 0.0, "embedding_size": vocab, "eos_token_id": eos_id, "flash_attention": False,
        "include_bias": False, "include_qkv_bias": False, "init_cutoff_factor": None, "init_device": "meta",
        "init_fn": "mitchell", "init_std": 0.02, "input_emb_norm": False, "layer_norm_type": "rms",
        "layer_norm_with_affine": True, "mask_token_id": mask_id, "max_sequence_length": 128, "mlp_hidden_size": MLP,
        "mlp_ratio": 2, "model_type": "llada", "multi_query_attention": None, "n_heads": HEADS, "n_kv_heads": KV_HEADS,
        "n_layers": LAYERS, "pad_token_id": eos_id, "precision": "amp_bf16", "residual_dropout": 0.0,
        "rms_norm_eps": 1e-5, "rope": True, "rope_full_precision": True, "rope_theta": 500000.0, "scale_logits": False,
        "transformers_version": "4.46.3", "use_cache": False, "vocab_size": vocab, "weight_tying": False,
    }


def _shapes(layout: str, vocab: int) -> dict[str, tuple[int, ...]]:
    """Every published weight name and shape: DreamModel's / LLaDAModelLM's state dict."""
    kv = KV_HEADS * WIDTH // HEADS
    if layout == "dream":
        out = {"model.embed_tokens.weight": (vocab, WIDTH), "model.norm.weight": (WIDTH,), "lm_head.weight": (vocab, WIDTH)}
        for i in range(LAYERS):
            b = f"model.layers.{i}."
            out.update({b + "self_attn.q_proj.weight": (WIDTH, WIDTH), b + "self_attn.q_proj.bias": (WIDTH,),
                        b + "self_attn.k_proj.weight": (kv, WIDTH), b + "self_attn.k_proj.bias": (kv,),
                        b + "self_attn.v_proj.weight": (kv, WIDTH), b + "self_attn.v_proj.bias": (kv,),
                        b + "self_attn.o_proj.weight": (WIDTH, WIDTH), b + "mlp.gate_proj.weight": (MLP, WIDTH),
                        b + "mlp.up_proj.weight": (MLP, WIDTH), b + "mlp.down_proj.weight": (WIDTH, MLP),
                        b + "input_layernorm.weight": (WIDTH,), b + "post_attention_layernorm.weight": (WIDTH,)})
        return out
    out = {"model.transformer.wte.weight": (vocab, WIDTH), "model.transformer.ln_f.weight": (WIDTH,),
           "model.transformer.ff_out.weight": (vocab, WIDTH)}
    for i in range(LAYERS):
        b = f"model.transformer.blocks.{i}."
        out.update({b + "attn_norm.weight": (WIDTH,), b + "ff_norm.weight": (WIDTH,), b + "q_proj.weight": (WIDTH, WIDTH),
                    b + "k_proj.weight": (kv, WIDTH), b + "v_proj.weight": (kv, WIDTH),
                    b + "attn_out.weight": (WIDTH, WIDTH), b + "ff_proj.weight": (MLP, WIDTH),
                    b + "up_proj.weight": (MLP, WIDTH), b + "ff_out.weight": (WIDTH, MLP)})
    return out


def _random_weights(shapes: dict, seed: int) -> dict[str, torch.Tensor]:
    """Norm weights near 1, everything else N(0, 0.3): a random model with confident, varied predictions."""
    g = torch.Generator().manual_seed(seed)
    return {name: (1 + 0.1 * torch.randn(shape, generator=g)) if "norm" in name and name.endswith("weight")
            else 0.3 * torch.randn(shape, generator=g) for name, shape in shapes.items()}


def _write_tokenizer(layout: str, folder: Path) -> tuple[int, int, int]:
    """-> (vocabulary size, mask id, eos id)."""
    tok = copy.deepcopy(tiny_tokenizer("byte"))
    if layout == "dream":  # vocab.json + merges.txt, the remote DreamTokenizer named, <|mask|> its mask token
        tok.backend_tokenizer.model.save(str(folder))
        n = tok.backend_tokenizer.get_vocab_size(with_added_tokens=False)
        specials = {str(tok.convert_tokens_to_ids(t)): t for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")}
        specials[str(n)] = "<|mask|>"
        (folder / "tokenizer_config.json").write_text(json.dumps({
            "added_tokens_decoder": {i: {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                         "single_word": False, "special": True} for i, t in specials.items()},
            "auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]}, "bos_token": None,
            "chat_template": CHATML_TEMPLATE, "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>",
            "errors": "replace", "mask_token": "<|mask|>", "model_max_length": 131072, "pad_token": "<|endoftext|>",
            "split_special_tokens": False, "tokenizer_class": "DreamTokenizer", "unk_token": None}))
        (folder / "tokenization_dream.py").write_text(RAISING)
        return n + 1, n, tok.convert_tokens_to_ids("<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|mdm_mask|>"]})  # not its mask_token
    tok.save_pretrained(folder)
    settings = json.loads((folder / "tokenizer_config.json").read_text())  # as transformers 4 wrote LLaDA's
    (folder / "tokenizer_config.json").write_text(json.dumps({**settings, "tokenizer_class": "PreTrainedTokenizerFast"}))
    return len(tok), tok.convert_tokens_to_ids("<|mdm_mask|>"), tok.eos_token_id


def write(layout: str, folder: Path, seed: int = 0) -> Path:
    """A tiny random checkpoint in the published `layout` ("dream" or "llada") in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab, mask_id, eos_id = _write_tokenizer(layout, folder)
    config = (dream_config if layout == "dream" else llada_config)(vocab, mask_id, eos_id)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file(_random_weights(_shapes(layout, vocab), seed), str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    for name in ("modeling", "configuration"):
        (folder / f"{name}_{layout}.py").write_text(RAISING)
    if layout == "dream":  # as Dream-org ships it: its sampler's settings; mask_token_id null (the tokenizer has it)
        (folder / "generation_config.json").write_text(json.dumps({
            "_from_model_config": True, "alg": "origin", "alg_temp": None, "bos_token_id": eos_id,
            "eos_token_id": eos_id, "eps": 0.001, "mask_token_id": None, "output_history": False,
            "pad_token_id": eos_id, "steps": 512, "temperature": 0.0, "top_k": None, "top_p": None,
            "transformers_version": "4.46.2"}))
    return folder


_FOLDERS = tempfile.TemporaryDirectory(prefix="attrwidgets-dlm-")  # removed when the test process ends


@functools.cache
def folder(layout: str) -> Path:
    return write(layout, Path(_FOLDERS.name) / layout)


@functools.cache
def loaded(layout: str):
    """The ModelHandle aw.load_model(folder, masked_lm=True) gives for the tiny `layout` checkpoint (shared)."""
    import attrwidgets as aw

    return aw.load_model(folder(layout), masked_lm=True)


# -- the independent forward ------------------------------------------------------------------------------------
def _rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rotate(x, theta):
    """Rotary embedding of x (H, T, d): pairs (i, i + d/2) turned by position * theta^(-2i/d)."""
    d = x.shape[-1]
    angle = torch.arange(x.shape[1], dtype=torch.float32)[:, None] * theta ** (-torch.arange(0, d, 2).float() / d)
    cos, sin = torch.cat([angle, angle], -1).cos(), torch.cat([angle, angle], -1).sin()
    return x * cos + torch.cat([-x[..., d // 2:], x[..., :d // 2]], -1) * sin


def reference_logits(layout: str, path: Path, ids: torch.Tensor) -> torch.Tensor:
    """(T, V) logits of the checkpoint in `path` on ids (T,), from its raw tensors and config.json in plain torch:
    embedding, per block RMSNorm -> full attention (rotary, no mask) -> residual, RMSNorm -> SwiGLU -> residual, final
    RMSNorm, output head; for Dream, its sampler's shift (position p predicted at p - 1, position 0 at itself)."""
    w, c = load_file(str(path / "model.safetensors")), json.loads((path / "config.json").read_text())
    if layout == "dream":
        names = {"emb": "model.embed_tokens", "final": "model.norm", "head": "lm_head", "block": "model.layers.{}.",
                 "n1": "input_layernorm", "n2": "post_attention_layernorm", "q": "self_attn.q_proj",
                 "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj", "gate": "mlp.gate_proj",
                 "up": "mlp.up_proj", "down": "mlp.down_proj"}
        heads, kv, layers, eps = c["num_attention_heads"], c["num_key_value_heads"], c["num_hidden_layers"], c["rms_norm_eps"]
    else:
        names = {"emb": "model.transformer.wte", "final": "model.transformer.ln_f", "head": "model.transformer.ff_out",
                 "block": "model.transformer.blocks.{}.", "n1": "attn_norm", "n2": "ff_norm", "q": "q_proj", "k": "k_proj",
                 "v": "v_proj", "o": "attn_out", "gate": "ff_proj", "up": "up_proj", "down": "ff_out"}
        heads, kv, layers, eps = c["n_heads"], c["n_kv_heads"], c["n_layers"], c["rms_norm_eps"]

    def linear(x, name):
        return x @ w[name + ".weight"].T + w.get(name + ".bias", 0)

    x = w[names["emb"] + ".weight"][ids]
    t, d = x.shape[0], x.shape[1] // heads
    for i in range(layers):
        b = names["block"].format(i)
        h = _rms(x, w[b + names["n1"] + ".weight"], eps)
        q, k, v = (linear(h, b + names[p]).view(t, -1, d).transpose(0, 1) for p in ("q", "k", "v"))
        q, k = _rotate(q, c["rope_theta"]), _rotate(k, c["rope_theta"])
        k, v = k.repeat_interleave(heads // kv, 0), v.repeat_interleave(heads // kv, 0)  # head j reads kv head j // (H/KV)
        attention = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), -1)  # every position sees every other
        x = x + linear((attention @ v).transpose(0, 1).reshape(t, -1), b + names["o"])
        h = _rms(x, w[b + names["n2"] + ".weight"], eps)
        x = x + linear(torch.nn.functional.silu(linear(h, b + names["gate"])) * linear(h, b + names["up"]), b + names["down"])
    logits = linear(_rms(x, w[names["final"] + ".weight"], eps), names["head"])
    return torch.cat([logits[:1], logits[:-1]]) if layout == "dream" else logits
