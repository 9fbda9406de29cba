"""DePass (docs/methods/depass.md): exact completeness, causality, each level against an independent
computation from the model's own modules (forward hooks), the split rules, chunking, cancellation."""

from __future__ import annotations

import functools
import threading

import numpy as np
import pytest
import torch

import attrwidgets as aw
from attrwidgets.core.depass.decompose import head_seed
from attrwidgets.core.depass.rules import MLP_RULES
from attrwidgets.core.forward import ComputationCancelled
from attrwidgets.core.frozen import FrozenForward
from attrwidgets.errors import AttrWidgetsError

PROMPT = "The capital of France is Paris. The capital of Italy"
ARCHS = ("llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "olmo2", "gpt_neox", "gpt2", "mistral")
EXACT = 1e-4  # docs/methods/depass.md: fp32, relative, per position


@functools.cache
def biased(arch: str):
    """A tiny model whose every bias (Qwen2's q/k/v, GPT-2's linears and LayerNorms) is non-zero, so a
    dropped bias shows up as a completeness error."""
    from attrwidgets.testing import tiny_handle

    handle = tiny_handle(arch, seed=3)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in handle.model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return handle


def hooked(handle, prompt, module_path: str, *, want="output"):
    """Run the model once and return what `module_path` received (input) or produced (output), (T, ...)."""
    module = handle.model.get_submodule(module_path)
    seen = {}
    def keep(value) -> None:  # a hook that returns a value would replace the module's output
        seen.setdefault("x", value[0].detach())

    if want == "input":
        hook = module.register_forward_pre_hook(lambda m, args: keep(args[0]))
    else:
        hook = module.register_forward_hook(lambda m, a, out: keep(out[0] if isinstance(out, tuple) else out))
    ids = handle.tokenizer(prompt, return_tensors="pt")["input_ids"]
    try:
        with torch.no_grad():
            out = handle.model(input_ids=ids, output_hidden_states=True)
    finally:
        hook.remove()
    return seen["x"], out


LEVELS = [("token", {}), ("token", {"start_layer": 1}), ("head", {"layer": 0}), ("module", {"layer": 0}),
          ("module", {"layer": 1, "module": "mlp"}), ("neuron", {"layer": 0, "neurons": [0, 5, 17]}),
          ("subspace", {"layer": 1, "components": [np.eye(32)[:, :4], np.eye(32)[:, 10:12]]})]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("rule", MLP_RULES)
@pytest.mark.parametrize("level,kwargs", LEVELS, ids=[f"{lv}-{i}" for i, (lv, _) in enumerate(LEVELS)])
def test_exact_completeness_every_level_and_rule(arch, rule, level, kwargs):
    d = aw.depass(biased(arch), PROMPT, level=level, mlp_rule=rule, progress=False, **kwargs)
    assert d.completeness_error < EXACT
    # ...measured against the model's own final hidden state, not ours
    _, out = hooked(biased(arch), PROMPT, biased(arch).adapter.final_norm)
    real = out.hidden_states[-1][0].numpy()
    err = np.linalg.norm(d.total - real, axis=-1) / np.linalg.norm(real, axis=-1)
    assert err.max() < EXACT
    assert d.components[-1] == "bias"


@pytest.mark.parametrize("arch", ("qwen2", "gpt2"))
def test_biases_land_in_the_bias_component(arch):
    d = aw.depass(biased(arch), PROMPT, progress=False)
    assert np.abs(d.states[:, -1]).max() > 1e-3  # value bias (qwen2), linear and norm biases (gpt2)


@pytest.mark.parametrize("arch", ARCHS)
def test_token_level_is_causal(arch):
    d = aw.depass(biased(arch), PROMPT, progress=False)
    T = len(d.tokens)
    later = np.triu(np.ones((T, T), bool), 1)  # [q, k] with k > q
    assert np.all(d.states[:, :T][later] == 0.0)
    assert np.abs(d.states[:, :T][~later]).max() > 0


def test_module_level_equals_before_and_module_output(tiny_llama):
    h = tiny_llama
    mlp_out, _ = hooked(h, PROMPT, "model.layers.0.mlp")
    block_in, _ = hooked(h, PROMPT, "model.layers.0.post_attention_layernorm", want="input")
    # end_layer=1: the state after block 0, not final-normed
    d = aw.depass(h, PROMPT, level="module", layer=0, module="mlp", end_layer=1, progress=False)
    np.testing.assert_allclose(d.states[:, 1], mlp_out.numpy(), atol=1e-6)
    np.testing.assert_allclose(d.states[:, 0], block_in.numpy(), atol=1e-6)
    assert d.components == ["before L0.mlp", "L0.mlp", "bias"]
    attn = aw.depass(h, PROMPT, level="module", layer=0, module="attn", end_layer=1, progress=False)
    assert attn.completeness_error < EXACT  # [before attn, attn output] through the layer's MLP


@pytest.mark.parametrize("arch", ("llama", "qwen2"))
def test_head_level_heads_are_the_attention_output_per_head(arch):
    """Head h = its context vector (what o_proj receives) times its slice of W_O, from the model's own
    forward; the value bias reaches the bias component, never a head."""
    h = biased(arch)
    ctx, _ = hooked(h, PROMPT, "model.layers.1.self_attn.o_proj", want="input")
    attn_out, _ = hooked(h, PROMPT, "model.layers.1.self_attn")
    frozen = FrozenForward(h, h.tokenizer(PROMPT, return_tensors="pt")["input_ids"][0])
    seed = head_seed(frozen, 1)
    H = frozen.n_heads
    X = seed.public()
    heads, bias = X[1:1 + H], X[-1]
    np.testing.assert_allclose((heads.sum(0) + bias).numpy(), attn_out.numpy(), atol=1e-5)
    w = h.model.model.layers[1].self_attn.o_proj.weight.detach()
    hd = w.shape[1] // H
    v_bias = h.model.model.layers[1].self_attn.v_proj.bias
    for k in range(H):
        own = ctx[:, k * hd:(k + 1) * hd]
        if v_bias is not None:  # softmax rows sum to 1: the bias part of the context is the bias itself
            own = own - v_bias.detach().view(-1, hd)[k // (H // frozen.n_kv_heads)]
        np.testing.assert_allclose(heads[k].numpy(), (own @ w[:, k * hd:(k + 1) * hd].t()).numpy(), atol=1e-5)
    d = aw.depass(h, PROMPT, level="head", layer=1, progress=False)
    assert d.components == ["stream"] + [f"L1.H{k}" for k in range(H)] + ["bias"]


def test_neuron_level_starts_after_the_mlp(tiny_llama):
    """Upstream starts the neuron split before the MLP and loses its output; here rest + neurons is the
    state after the MLP, and each neuron's component is its value times its column of W_out."""
    h = tiny_llama
    values, _ = hooked(h, PROMPT, "model.layers.0.mlp.down_proj", want="input")
    after, _ = hooked(h, PROMPT, "model.layers.1.input_layernorm", want="input")
    d = aw.depass(h, PROMPT, level="neuron", layer=0, neurons=[3, 9], end_layer=1, progress=False)
    np.testing.assert_allclose(d.total, after.numpy(), atol=1e-5)
    w = h.model.model.layers[0].mlp.down_proj.weight.detach()
    np.testing.assert_allclose(d.states[:, 2], (values[:, 9:10] * w[:, 9]).numpy(), atol=1e-6)


def test_subspace_components_and_remainder(tiny_llama):
    h = tiny_llama
    state = aw.residual_state(h, PROMPT, layer=1)
    half = state * 0.25
    d = aw.depass(h, PROMPT, level="subspace", layer=1, components=np.stack([half, state - half]),
                  progress=False)
    assert d.components == ["component 0", "component 1", "bias"] and d.completeness_error < EXACT
    with pytest.raises(AttrWidgetsError, match=r"do not sum to the state entering layer 1: relative error"):
        aw.depass(h, PROMPT, level="subspace", layer=1, components=np.stack([half, half]), progress=False)


@pytest.mark.parametrize("rule", MLP_RULES)
def test_chunking_changes_nothing(rule):
    h = biased("gpt2")
    whole = aw.depass(h, PROMPT, mlp_rule=rule, progress=False)
    tiny_chunks = aw.depass(h, PROMPT, mlp_rule=rule, chunk_budget=1, progress=False)  # one position a chunk
    np.testing.assert_allclose(tiny_chunks.states, whole.states, atol=1e-6)


def test_generation_then_decomposition_and_logit_scores(tiny_llama):
    d = aw.depass(tiny_llama, PROMPT, max_new_tokens=3, progress=False)
    assert len(d.tokens) == len(tiny_llama.tokenizer(PROMPT)["input_ids"]) + 3
    last = d.tokens[-1].id
    scores = d.logit_scores(last)  # (T, M)
    ids = torch.tensor([[t.id for t in d.tokens]])
    with torch.no_grad():
        logits = tiny_llama.model(input_ids=ids).logits[0]
    np.testing.assert_allclose(scores.sum(1), logits[:, last].numpy(), atol=1e-4)
    with pytest.raises(AttrWidgetsError, match="tokens"):
        d.logit_scores("capital of France")


def test_token_level_layer_means_start_layer(tiny_llama):
    by_layer = aw.depass(tiny_llama, PROMPT, layer=1, progress=False)
    by_start = aw.depass(tiny_llama, PROMPT, start_layer=1, progress=False)
    np.testing.assert_array_equal(by_layer.states, by_start.states)
    assert by_layer.options["start_layer"] == 1


def test_capture_ignores_a_forward_of_another_thread(tiny_llama):
    """A live widget's worker may run the same model while a decomposition records its forward: right after
    our forward, another thread runs one on another prompt; its activations must not replace ours."""
    h = tiny_llama
    other = h.tokenizer("one two three four five six seven", return_tensors="pt")["input_ids"]

    ran = []

    def other_thread_forward(module, args, out):
        if not ran:  # once: the other forward passes through this hook too
            ran.append(True)
            worker = threading.Thread(target=lambda: h.model(input_ids=other))
            worker.start()
            worker.join()

    hook = h.model.model.norm.register_forward_hook(other_thread_forward)
    try:
        with torch.no_grad():
            d = aw.depass(h, PROMPT, progress=False)
    finally:
        hook.remove()
    assert ran and d.completeness_error < EXACT


def test_cancel_stops_between_layers(tiny_llama):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ComputationCancelled):
        aw.depass(tiny_llama, PROMPT, progress=False, cancel=cancel)


@pytest.mark.parametrize("kwargs,match", [
    ({"level": "layer"}, "Unknown level 'layer'"),
    ({"mlp_rule": "gelu"}, "Unknown mlp_rule 'gelu'"),
    ({"mlp_rule": "softmax", "temperature": 0}, "temperature must be a positive"),
    ({"level": "head"}, r"needs layer=<0..1>"),
    ({"level": "head", "layer": 2}, r"layer=2 is out of range: this model has 2"),
    ({"level": "neuron", "layer": 0, "neurons": [64]}, r"neuron=64 is out of range: this model has 64"),
    ({"level": "neuron", "layer": 0}, "needs neurons="),
    ({"level": "module", "layer": 0, "module": "ffn"}, "Unknown module 'ffn'"),
    ({"end_layer": 3}, "end_layer=3 is out of range"),
    ({"level": "subspace", "layer": 0}, "needs components="),
    ({"level": "subspace", "layer": 0, "components": [np.ones((7, 2))]}, r"basis 0 must be \(D, k\)"),
    ({"level": "head", "layer": 0, "neurons": [1]}, "neurons= belongs to level='neuron'"),
    ({"layer": 1, "start_layer": 2}, "give one"),
])
def test_bad_input_is_a_clear_error(tiny_llama, kwargs, match):
    with pytest.raises(AttrWidgetsError, match=match):
        aw.depass(tiny_llama, PROMPT, progress=False, **kwargs)


def test_bad_prompt_and_architecture(tiny_llama):
    with pytest.raises(AttrWidgetsError, match="prompt is empty"):
        aw.depass(tiny_llama, "  ", progress=False)
    with pytest.raises(AttrWidgetsError, match="beyond the model's context of 128"):
        aw.depass(tiny_llama, "one two three " * 60, progress=False)
    from dataclasses import replace

    from attrwidgets.core.adapters import ADAPTERS

    fake = replace(tiny_llama, adapter=ADAPTERS["bert"])
    with pytest.raises(AttrWidgetsError, match="supports causal LMs"):
        aw.depass(fake, PROMPT, progress=False)
