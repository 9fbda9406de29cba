"""What makes Gemma 2/3, OLMo 2 and GPT-NeoX different, each checked against the model's own modules:
post-norms, Gemma's (1 + w) norms and scaled embedding, the final soft-cap, parallel blocks and the per-head
fused q/k/v (docs/methods/depass.md, "Architectures"). The property suites (test_depass, test_lig,
test_graph_engine, ...) run every family on these architectures too."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import attrwidgets as aw
from attrwidgets.core.depass.decompose import head_seed
from attrwidgets.core.forward import TargetFunction
from attrwidgets.core.frozen import FrozenForward
from attrwidgets.testing import tiny_handle

PROMPT = "The capital of France is Paris. The capital"


@functools.cache
def handle(arch):
    return tiny_handle(arch)


def ids_of(h):
    return h.tokenizer(PROMPT, return_tensors="pt")["input_ids"][0]


def module_output(h, path: str) -> torch.Tensor:
    """(T, D) the output of the module at `path` on the prompt, from the model's own forward."""
    seen = {}
    module = h.adapter.get(h.model, path)
    hook = module.register_forward_hook(lambda m, a, out: seen.setdefault("out", out[0] if isinstance(out, tuple) else out))
    try:
        with torch.no_grad():
            h.model(input_ids=ids_of(h).unsqueeze(0))
    finally:
        hook.remove()
    return seen["out"][0].float()


@pytest.mark.parametrize("arch", ["gemma2", "gemma3", "olmo2"])
def test_heads_through_the_post_norm_sum_to_its_output(arch):
    """Each head's share after the frozen post-attention norm, plus the bias part, is that norm's output."""
    h = handle(arch)
    seed = head_seed(FrozenForward(h, ids_of(h)), 1).public()
    heads_and_bias = seed[1:].sum(0)  # every component but the stream
    real = module_output(h, f"{h.adapter.blocks}.1.{h.adapter.post_norm_attn}")
    np.testing.assert_allclose(heads_and_bias.numpy(), real.numpy(), atol=1e-5 * float(real.abs().max()))


def test_parallel_block_heads_never_reach_their_own_layers_mlp():
    """GPT-NeoX: after one block, each head's part is exactly its write (the MLP read the block's input)."""
    h = handle("gpt_neox")
    frozen = FrozenForward(h, ids_of(h))
    seed = head_seed(frozen, 0)
    d = aw.depass(h, PROMPT, level="head", layer=0, end_layer=1, progress=False)
    writes = seed.public()[1:-1].permute(1, 0, 2).numpy()  # (T, H, D) the heads' writes at the seed
    np.testing.assert_allclose(d.states[:, 1:-1], writes, atol=1e-6)
    # ...so the stream and the bias part share the whole MLP output (the bias part also holds the attention's)
    mlp_out = module_output(h, "gpt_neox.layers.0.mlp")
    stream_and_bias = d.states[:, 0] + d.states[:, -1] - seed.public()[-1].numpy()
    np.testing.assert_allclose(stream_and_bias, (frozen.blocks[0].x_in + mlp_out).numpy(), atol=1e-5)
    assert d.completeness_error < 1e-5


def test_the_final_soft_cap_is_a_frozen_scale_of_each_logit():
    """Gemma 2: the parts of a logit sum to the model's capped logit, not to the head's output."""
    h = handle("gemma2")
    cap = h.model.config.final_logit_softcapping
    d = aw.depass(h, PROMPT, progress=False)
    token = int(ids_of(h)[-1])
    with torch.no_grad():
        capped = h.model(input_ids=ids_of(h).unsqueeze(0)).logits[0, :, token]
        uncapped = h.model.lm_head(torch.tensor(d.total))[:, token]
    np.testing.assert_allclose(d.logit_scores(token).sum(1), capped.numpy(), atol=1e-5 * cap)
    assert float((capped - uncapped).abs().max()) > 100 * 1e-5 * cap  # the cap bends these logits: not vacuous


@pytest.mark.parametrize("arch", ["gemma2", "gemma3"])
def test_baselines_go_through_the_scaled_embedding(arch):
    h = handle(arch)
    token = int(ids_of(h)[1])
    fn = TargetFunction(h, ids_of(h), [3], [token])
    row = h.adapter.embedding(h.model).weight[token]
    np.testing.assert_allclose(fn.token_embedding(token).numpy(), (row * h.model.config.hidden_size ** 0.5).numpy(),
                               rtol=1e-3)  # the module scales in the weight's dtype


def test_per_head_fused_values_are_the_models_value_states():
    h = handle("gpt_neox")
    frozen = FrozenForward(h, ids_of(h))
    attn = h.model.gpt_neox.layers[1].attention
    normed = h.model.gpt_neox.layers[1].input_layernorm(frozen.blocks[1].x_in)
    with torch.no_grad():
        qkv = attn.query_key_value(normed).view(len(normed), -1, 3 * attn.head_size)  # the model's own split
    values = qkv[..., 2 * attn.head_size:].reshape(len(normed), -1)
    vmap = frozen.value_map(1)
    np.testing.assert_allclose((normed @ vmap.weight.t() + vmap.bias).numpy(), values.numpy(), atol=1e-6)


@pytest.mark.parametrize("arch,expected", [("gemma2", "post_feedforward_layernorm"), ("gemma3", "pre_feedforward_layernorm"),
                                           ("olmo2", "post_attention_layernorm"), ("gpt_neox", "query_key_value")])
def test_describe_boundaries_prints_each_new_map(arch, expected, capsys):
    text = aw.describe_boundaries(handle(arch))
    assert "post_norm_attn" in text or arch == "gpt_neox"
    assert expected in text
    assert capsys.readouterr().out.strip() == text.strip()


def test_lig_on_a_parallel_model_has_no_mlp_route():
    r = aw.lig(handle("gpt_neox"), "the cat sat", n_steps=4)
    assert "mlp" not in r.options["routes"]
