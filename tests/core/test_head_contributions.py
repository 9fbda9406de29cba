"""Head contributions (the HeadGrid's numbers), DePass results on disk, and the real default model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import attrwidgets as aw
from attrwidgets.core.depass.heads import HeadSession
from attrwidgets.errors import AttrWidgetsError

from .test_depass import PROMPT, biased, hooked


def real_logits(handle, ids):
    with torch.no_grad():
        return handle.model(input_ids=torch.tensor([ids])).logits[0]


@pytest.mark.parametrize("arch", ("llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "olmo2", "gpt_neox", "gpt2"))
def test_every_layer_splits_the_real_logit_exactly(arch):
    h = biased(arch)
    r = aw.head_contributions(h, PROMPT, progress=False)
    logits = real_logits(h, [t.id for t in r.tokens])[-1]
    assert r.target_id == int(logits.argmax())  # default: the token the model predicts there
    per_layer = r.stream + r.contributions.sum(1) + r.bias
    np.testing.assert_allclose(per_layer, float(logits[r.target_id]), rtol=1e-4, atol=1e-4)
    assert r.logit == pytest.approx(float(logits[r.target_id]), abs=1e-5)
    assert r.completeness_error < 1e-4


def test_per_source_sums_to_the_heads_direct_effect(tiny_llama):
    """Independent: the context vector o_proj receives (model's own forward), one head's slice through
    W_O, the final norm frozen at the real scale, then the unembedding row."""
    h = tiny_llama
    r = aw.head_contributions(h, PROMPT, target=" Paris", position=5, progress=False)
    ctx, _ = hooked(h, PROMPT, "model.layers.1.self_attn.o_proj", want="input")
    norm = h.model.model.norm
    ids = h.tokenizer(PROMPT)["input_ids"]
    with torch.no_grad():
        x = hooked(h, PROMPT, "model.norm", want="input")[0][5]
        scale = torch.rsqrt(x.pow(2).mean() + norm.variance_epsilon)
        H = r.n_heads
        hd = ctx.shape[1] // H
        w = h.model.model.layers[1].self_attn.o_proj.weight
        for k in range(H):
            write = ctx[5, k * hd:(k + 1) * hd] @ w[:, k * hd:(k + 1) * hd].t()
            direct = (write * scale * norm.weight) @ h.model.lm_head.weight[r.target_id]
            assert float(r.per_source[1, k].sum()) == pytest.approx(float(direct), abs=1e-5)
    assert len(r.tokens) == 6 and r.position == 5 and ids[:6] == [t.id for t in r.tokens]


def test_session_rows_match_the_one_shot_call(tiny_llama):
    s = HeadSession(tiny_llama, PROMPT, max_new_tokens=3)
    assert s.query_positions == [p - 1 for p in s.target_positions] and len(s.target_positions) == 3
    row = s.contributions(1)
    again = HeadSession(tiny_llama, PROMPT, max_new_tokens=0)
    assert again.target_positions == list(range(1, len(again.tokens)))
    logits = real_logits(tiny_llama, [t.id for t in s.tokens])
    expected = float(logits[row.position, row.target_id])
    np.testing.assert_allclose(row.stream + row.contributions.sum(1) + row.bias, expected, rtol=1e-4, atol=1e-4)
    assert row.attention.shape[-1] == len(s.tokens) and row.per_source.shape[-1] == len(s.tokens)
    assert np.all(row.per_source[..., row.position + 1:] == 0)


@pytest.mark.parametrize("kwargs,match", [
    ({"target": "capital of France"}, r"is \d+ tokens .*give a single token"),
    ({"position": 99}, r"position=99 is out of range"),
    ({"mlp_rule": "gelu"}, "Unknown mlp_rule"),
])
def test_head_contributions_bad_input(tiny_llama, kwargs, match):
    with pytest.raises(AttrWidgetsError, match=match):
        aw.head_contributions(tiny_llama, PROMPT, progress=False, **kwargs)


def test_results_round_trip_and_malformed_files(tiny_llama, tmp_path):
    d = aw.depass(tiny_llama, PROMPT, level="head", layer=0, progress=False)
    path = d.save(tmp_path / "dec")
    back = aw.load_decomposition(path)
    np.testing.assert_array_equal(back.states, d.states)
    assert back.components == d.components and back.tokens == d.tokens and back.options == d.options
    r = aw.head_contributions(tiny_llama, PROMPT, progress=False)
    r_back = aw.load_head_contributions(r.save(tmp_path / "heads.json"))
    np.testing.assert_array_equal(r_back.contributions, r.contributions)
    np.testing.assert_allclose(r_back.attention, r.attention, atol=1e-3)  # stored as float16

    header = json.loads(path.read_text())
    path.write_text(json.dumps({**header, "schema": "attrwidgets.attribution/1"}))
    with pytest.raises(AttrWidgetsError, match="expected 'attrwidgets.decomposition/1'"):
        aw.load_decomposition(path)
    path.write_text("{not json")
    with pytest.raises(AttrWidgetsError, match="not valid JSON"):
        aw.load_decomposition(path)
    path.write_text(json.dumps(header))
    tensors = path.with_suffix(".safetensors")
    tensors.write_bytes(tensors.read_bytes()[:50])
    with pytest.raises(AttrWidgetsError, match="not a valid safetensors file"):
        aw.load_decomposition(path)
    tensors.unlink()
    with pytest.raises(AttrWidgetsError, match="is missing; keep the two files together"):
        aw.load_decomposition(path)
    with pytest.raises(AttrWidgetsError, match="no such file"):
        aw.load_head_contributions(tmp_path / "nothing.json")


@pytest.mark.real_model
def test_real_model_token_level_and_heads(real_model):
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    d = aw.depass(real_model, chat, max_new_tokens=3, progress=False)
    assert d.completeness_error < 1e-4
    T = len(d.tokens)
    assert np.all(d.states[:, :T][np.triu(np.ones((T, T), bool), 1)] == 0.0)
    logits = real_logits(real_model, [t.id for t in d.tokens])
    last = d.tokens[-1].id
    np.testing.assert_allclose(d.logit_scores(last)[-2].sum(), float(logits[-2, last]), rtol=1e-4)
    r = aw.head_contributions(real_model, "The capital of France is", progress=False)
    assert r.target_text == " Paris"
    assert r.contributions.shape == (30, 9)
    np.testing.assert_allclose(r.stream + r.contributions.sum(1) + r.bias, r.logit, rtol=1e-4)


def test_layers_stream_last_first_and_the_last_report_is_the_result(tiny_llama):
    s = HeadSession(tiny_llama, PROMPT, max_new_tokens=2)
    reports = []
    result = s.contributions(1, on_layer=lambda layer, partial: reports.append((layer, partial.copy())))
    L = result.n_layers
    assert [layer for layer, _ in reports] == list(range(L - 1, -1, -1))  # the cheapest layer first
    for k, (layer, partial) in enumerate(reports):
        finished = np.isfinite(partial).all(1)
        assert finished.tolist() == [l >= layer for l in range(L)]  # done layers filled, the others NaN
        np.testing.assert_array_equal(partial[finished], result.contributions[finished])
    np.testing.assert_array_equal(reports[-1][1], result.contributions)
