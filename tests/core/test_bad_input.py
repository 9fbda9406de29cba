"""Each bad input gets an AttrWidgetsError that says what was wrong and how to fix it."""

import re

import pytest

import attrwidgets as aw
from attrwidgets.errors import AttrWidgetsError, NonFiniteGradientError


def _raises(match, fn, *args, **kwargs):
    with pytest.raises(AttrWidgetsError, match=match):
        fn(*args, **kwargs)


def test_empty_prompt(tiny_llama):
    _raises("prompt is empty", aw.attribute, tiny_llama, "   ", method="saliency")
    _raises("no messages", aw.attribute, tiny_llama, [], method="saliency")
    _raises("empty", aw.attribute, tiny_llama, [{"role": "user", "content": ""}], method="saliency")


def test_prompt_beyond_context(tiny_llama):
    long = "one two three " * 60
    _raises(r"context of 128 tokens: shorten the prompt or lower max_new_tokens", aw.attribute, tiny_llama,
            long, method="saliency")
    _raises("context", aw.attribute, tiny_llama, "one two", method="saliency", max_new_tokens=500)


def test_unknown_method_and_option(tiny_llama):
    _raises(re.escape("Did you mean 'saliency'?"), aw.attribute, tiny_llama, "one", method="saliancy")
    _raises(re.escape("'n_step' (did you mean 'n_steps'?)"), aw.attribute, tiny_llama, "one",
            method="integrated_gradients", n_step=4)
    _raises("Unknown quadrature 'simpson'", aw.attribute, tiny_llama, "one", method="integrated_gradients",
            quadrature="simpson")
    _raises("Unknown baseline", aw.attribute, tiny_llama, "one", method="integrated_gradients", baseline="mask")


@pytest.mark.parametrize("n_steps", [0, -3, 2.5, "8", True])
def test_bad_n_steps(tiny_llama, n_steps):
    _raises("n_steps must be a positive integer", aw.attribute, tiny_llama, "one two",
            method="integrated_gradients", n_steps=n_steps)


def test_target_that_tokenizes_to_nothing(tiny_llama):
    _raises("tokenizes to nothing", aw.attribute, tiny_llama, "one two", method="saliency", target="")
    _raises("single token", aw.attribute, tiny_llama, "one two", method="saliency", contrast=" capital of")


def test_unknown_model_and_folder_without_weights(tmp_path):
    _raises("does not exist", aw.load_model, str(tmp_path / "nope"))
    (tmp_path / "config.json").write_text("{}")
    _raises("no weights", aw.load_model, str(tmp_path))
    _raises("Could not load model 'no-such-org/no-such-model'", aw.load_model, "no-such-org/no-such-model")


def test_a_gguf_of_an_architecture_transformers_cannot_read(tmp_path, monkeypatch):
    """Issue 18's bad input: the message names the GGUF's architecture and the ones transformers reads, and the
    failed conversion leaves nothing in the cache."""
    from tests.core.bad_inputs import tiny_gguf

    monkeypatch.setenv("ATTRWIDGETS_CACHE", str(tmp_path / "cache"))
    path = tiny_gguf(tmp_path / "rwkv.gguf", "rwkv7")
    with pytest.raises(AttrWidgetsError) as err:
        aw.load_model(str(path))
    message = str(err.value)
    assert "GGUF file 'rwkv.gguf' has architecture 'rwkv7', which transformers" in message
    readable = message.split("It reads: ", 1)[1].split(".", 1)[0].split(", ")
    assert {"llama", "qwen2", "gemma3", "phi3"} <= set(readable) and "rwkv7" not in readable
    assert "general" not in readable and "tokenizer" not in readable  # sections of the mapping, not models
    assert list((tmp_path / "cache").rglob("*")) == [tmp_path / "cache" / "gguf"]


def test_unsupported_architecture():
    from transformers import OPTConfig, OPTForCausalLM

    model = OPTForCausalLM(OPTConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                     num_attention_heads=2, word_embed_proj_dim=16))
    _raises(r"Unsupported architecture 'opt'. Supported: bert, gemma2, gemma3_text, gpt2, gpt_neox, llama, mistral, olmo2, phi3, qwen2, qwen3", aw.describe_boundaries,
            model)


def test_nan_in_gradients_is_reported_not_drawn(tiny_llama):
    block = tiny_llama.model.model.layers[0]
    hook = block.register_forward_hook(lambda m, i, o: (o[0] * float("nan"),) + tuple(o[1:])
                                       if isinstance(o, tuple) else o * float("nan"))
    try:
        with pytest.raises(NonFiniteGradientError, match="NaN/inf"):
            aw.attribute(tiny_llama, "one two", method="saliency", max_new_tokens=1, target=" three")
    finally:
        hook.remove()


def test_describe_boundaries_lists_every_role(tiny, capsys):
    text = aw.describe_boundaries(tiny)
    for role in ("embed_tokens", "blocks", "o_proj", "mlp_out", "norm_attn", "final_norm", "unembedding"):
        assert role in text
    assert capsys.readouterr().out.strip() == text.strip()
