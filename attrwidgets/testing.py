"""Tiny random models with an offline tokenizer, for tests and demos: no download, milliseconds.

The tokenizer is a BPE trained in-process on a few sentences, in the two styles real models use:
"▁" (SentencePiece-like Metaspace, as Llama/Mistral) and "Ġ" (byte-level, as GPT-2/Qwen2). It carries a
ChatML chat template so chat segments can be tested without the real model.
"""

from __future__ import annotations

import functools

import torch

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "What is the capital of France? Paris is the capital of France.",
    "the cat sat on the mat and the dog sat on the log",
    "You are a helpful assistant. Answer briefly and clearly.",
    "one two three four five six seven eight nine ten eleven twelve",
    "<img src=x onerror=alert(1)> tokens are text, never markup & never code",
]
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
RANDOM_NORMS = ("gemma2", "gemma3", "olmo2", "gpt_neox")  # tiny_handle randomises their norms' parameters


@functools.lru_cache(maxsize=4)
def tiny_tokenizer(style: str = "byte"):
    """A ~300-piece BPE tokenizer: style "byte" (Ġ pieces) or "metaspace" (▁ pieces)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None if style == "byte" else "<unk>"))
    if style == "byte":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        specials = SPECIAL_TOKENS
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        alphabet = sorted(set("".join(_CORPUS)) | set("▁\n"))
        specials = ["<unk>"] + SPECIAL_TOKENS
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=specials, initial_alphabet=alphabet,
                                  show_progress=False)
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token="<unk>" if style != "byte" else None,
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def tiny_config(arch: str, vocab_size: int, *, hidden: int = 32, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                intermediate: int = 64):
    """The config of a random `arch` model: 2 layers of width 32 by default (benchmarks ask for larger)."""
    from transformers import (
        BertConfig,
        Gemma2Config,
        Gemma3TextConfig,
        GPT2Config,
        GPTNeoXConfig,
        LlamaConfig,
        MistralConfig,
        Olmo2Config,
        Phi3Config,
        Qwen2Config,
        Qwen3Config,
    )

    common = {"vocab_size": vocab_size, "hidden_size": hidden, "intermediate_size": intermediate,
              "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
              "max_position_embeddings": 128}
    if arch == "llama":
        return LlamaConfig(**common)
    if arch == "mistral":
        return MistralConfig(**common, sliding_window=None)
    if arch == "qwen2":
        return Qwen2Config(**common)
    if arch == "qwen3":
        return Qwen3Config(**common, head_dim=hidden // heads)
    if arch == "phi3":
        return Phi3Config(**common, pad_token_id=None, bos_token_id=None, eos_token_id=None)
    if arch in ("gemma2", "gemma3"):
        # Both layer kinds (a sliding window shorter than test prompts), and caps low enough to bend a tiny
        # random model's attention scores and logits, so the tests exercise what makes Gemma different.
        gemma = {**common, "head_dim": hidden // heads, "query_pre_attn_scalar": hidden // heads, "sliding_window": 4,
                 "layer_types": ["sliding_attention", "full_attention"] * (layers // 2) + ["sliding_attention"] * (layers % 2),
                 "pad_token_id": None, "bos_token_id": None, "eos_token_id": None}
        if arch == "gemma2":
            return Gemma2Config(**gemma, attn_logit_softcapping=0.5, final_logit_softcapping=0.3)
        return Gemma3TextConfig(**gemma)
    if arch == "olmo2":
        return Olmo2Config(**common, pad_token_id=None, bos_token_id=None, eos_token_id=None)
    if arch == "gpt_neox":
        return GPTNeoXConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
                             num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=128,
                             rotary_pct=0.5, use_parallel_residual=True, tie_word_embeddings=False,
                             bos_token_id=None, eos_token_id=None)
    if arch == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_embd=hidden, n_layer=layers, n_head=heads, n_positions=128,
                          n_inner=None if intermediate == 64 and hidden == 32 else intermediate,
                          bos_token_id=None, eos_token_id=None)
    if arch == "bert":
        return BertConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
                          num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=128)
    raise ValueError(f"tiny_config: unknown arch {arch!r}")


def tiny_handle(arch: str = "llama", seed: int = 0, *, init_std: float | None = None):
    """A ModelHandle around a 2-layer random model (d=32, 4 heads) and an offline tokenizer.

    arch "bert" is a bare encoder body (AutoModel, no head), as load_model gives for BERT-family folders.

    init_std: weight init scale; larger values make a less uniform, more "opinionated" model.
    """
    from transformers import AutoModel, AutoModelForCausalLM

    from attrwidgets.core.adapters import adapter_for
    from attrwidgets.models import ModelHandle

    tokenizer = tiny_tokenizer("metaspace" if arch in ("llama", "mistral") else "byte")
    config = tiny_config(arch, len(tokenizer))
    if init_std is not None:
        config.initializer_range = init_std
    config.pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = tokenizer.eos_token_id
    torch.manual_seed(seed)
    loader = AutoModel if arch == "bert" else AutoModelForCausalLM
    model = loader.from_config(config, attn_implementation="eager", dtype=torch.float32)
    if arch == "bert":
        # BERT initialises biases to 0, and LayerNorm is scale-invariant: on the path a * x from a zero
        # baseline the block's output would jump at a = 0 and stay flat. Real checkpoints have biases.
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith("bias"):
                    param.normal_(0.0, 0.2)
    if arch in RANDOM_NORMS:
        # Norms start as identities (weight 1 or 0 under Gemma's 1 + w, bias 0): random ones make a test
        # fail that reads a Gemma weight as w instead of 1 + w, or drops a LayerNorm's offset.
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "norm" in name:
                    param.add_(torch.randn_like(param) * 0.3)
    model.eval().requires_grad_(False)  # as load_model: frozen once
    return ModelHandle(model=model, tokenizer=tokenizer, adapter=adapter_for(model), model_id=f"tiny-{arch}")


def tiny_masked_lm(seed: int = 0):
    """A 2-layer random BERT masked LM (bidirectional, logits at every position) with a [MASK] token: the
    smallest model the masked-diffusion sampler (aw.dlig) can run. Biases are random, as in tiny_handle."""
    import copy

    from transformers import AutoModelForMaskedLM

    from attrwidgets.core.adapters import adapter_for
    from attrwidgets.models import ModelHandle

    tokenizer = copy.deepcopy(tiny_tokenizer("byte"))
    tokenizer.add_special_tokens({"mask_token": "[MASK]"})
    config = tiny_config("bert", len(tokenizer))
    torch.manual_seed(seed)
    model = AutoModelForMaskedLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.2)
    model.eval().requires_grad_(False)  # as load_model: frozen once
    return ModelHandle(model=model, tokenizer=tokenizer, adapter=adapter_for(model), model_id="tiny-bert-mlm")


def toy_graph(
    seed: int = 0,
    n_layers: int = 3,
    n_pos: int = 5,
    *,
    features_per_site: int = 3,
    n_logits: int = 3,
    density: float = 0.4,
    components: bool = False,
    sparse: bool = False,
    vocab_size: int = 100,
    labeled: bool = True,
):
    """A random but well-formed attribution Graph for widget and data tests (no model).

    Nodes in the Graph's order: features (or, with components=True, 2 attention heads and one MLP per layer and
    position), errors (none for components), one token per position, then n_logits logits at the last position.
    Edges are causal: a source sits at an earlier layer (tokens below layer 0; within a layer only attention ->
    mlp) and at the same or an earlier position; error nodes have no inputs. Features and errors start at
    position 1 (circuit-tracer's convention: position 0 is the BOS sink). sparse=True stores a scipy CSR adjacency.
    """
    import numpy as np

    from attrwidgets.core.graph.graph import KINDS, Graph, NodeTable

    rng = np.random.default_rng(seed)
    rows = []  # (kind, layer, position, feature, activation)
    for layer in range(n_layers):
        for pos in range(1, n_pos):
            if components:
                rows += [("attention", layer, pos, head, float(rng.normal())) for head in range(2)]
                rows.append(("mlp", layer, pos, -1, float(rng.normal())))
            else:
                chosen = rng.choice(50, size=rng.integers(1, features_per_site + 1), replace=False)
                rows += [("feature", layer, pos, int(f), float(rng.uniform(0.1, 3.0))) for f in sorted(chosen)]
    if not components:
        rows += [("error", layer, pos, -1, np.nan) for layer in range(n_layers) for pos in range(1, n_pos)]
    token_ids = [int(t) for t in rng.integers(3, vocab_size, size=n_pos)]
    rows += [("token", -1, pos, token_ids[pos], np.nan) for pos in range(n_pos)]
    logit_ids = [int(t) for t in rng.choice(vocab_size, size=n_logits, replace=False)]
    rows += [("logit", n_layers, n_pos - 1, v, np.nan) for v in logit_ids]
    kind, layer, position, feature, activation = (list(c) for c in zip(*rows))
    nodes = NodeTable(kind, layer, position, feature, activation, n_layers=n_layers)

    k, lay, pos = nodes.kind, nodes.layer.astype(np.int64), nodes.position.astype(np.int64)
    attention, mlp = KINDS.index("attention"), KINDS.index("mlp")
    # a source s may feed target t when it is strictly below it, or is an attention head under the same layer's mlp
    below = (lay[None, :] < lay[:, None]) | ((lay[None, :] == lay[:, None]) & (k[None, :] == attention) & (k[:, None] == mlp))
    allowed = below & (pos[None, :] <= pos[:, None])
    allowed[k == KINDS.index("error")] = False
    allowed[k == KINDS.index("token")] = False
    weights = rng.normal(size=allowed.shape) * (rng.uniform(size=allowed.shape) < density) * allowed
    probs = np.sort(rng.dirichlet(np.ones(n_logits + 1)))[::-1][:n_logits]
    tokens = [f"t{t}" for t in token_ids]
    labeler = None
    if labeled:
        def labeler(indices):
            return [f"{KINDS[nodes.kind[i]]} L{nodes.layer[i]}#{nodes.feature[i]}" for i in indices]

    adjacency = torch.tensor(weights, dtype=torch.float32)
    if sparse:
        import scipy.sparse as sp

        adjacency = sp.csr_array(weights.astype(np.float32))
    return Graph(
        nodes, adjacency, logit_weights=probs.astype(np.float32), prompt=" ".join(tokens), tokens=tokens,
        token_ids=token_ids, n_layers=n_layers, labeler=labeler,
        metadata={"logit_tokens": [f"t{v}" for v in logit_ids], "scan": "toy", "seed": seed},
    )
