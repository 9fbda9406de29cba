"""Saliency / input x gradient / attention: independent computation, causality, contrast."""

import numpy as np
import pytest
import torch

import attrwidgets as aw
from tests.core.reference import gradient, input_embeds

CHAT = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is the capital of France?"}]


def test_saliency_equals_independent_backward(tiny):
    r = aw.attribute(tiny, CHAT, method="saliency", max_new_tokens=4, progress=False)
    e = input_embeds(tiny, r)
    for i, (pos, tok) in enumerate(zip(r.target_positions, r.targets)):
        expected = gradient(tiny, e, pos, tok.id).norm(dim=-1).numpy()
        np.testing.assert_allclose(r.scores[i], expected, rtol=1e-4, atol=1e-6)


def test_input_x_gradient_equals_independent_backward(tiny):
    r = aw.attribute(tiny, "the cat sat on the", method="input_x_gradient", max_new_tokens=3, progress=False,
                     per_dim=True)
    e = input_embeds(tiny, r)
    for i, (pos, tok) in enumerate(zip(r.target_positions, r.targets)):
        expected = (gradient(tiny, e, pos, tok.id) * e).numpy()
        np.testing.assert_allclose(r.per_dim[i], expected, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(r.scores[i], expected.sum(-1), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["saliency", "input_x_gradient", "attention", "integrated_gradients"])
def test_causality_no_attribution_to_later_positions(tiny, method):
    opts = {"n_steps": 8, "quadrature": "gauss_legendre"} if method == "integrated_gradients" else {}
    r = aw.attribute(tiny, "one two three four", method=method, max_new_tokens=4, progress=False, **opts)
    assert r.computed_rows.all()
    for i, pos in enumerate(r.target_positions):
        assert np.all(r.scores[i, pos:] == 0.0), f"row {i} attributes to positions >= {pos}"
        assert np.any(r.scores[i, :pos] != 0.0), "a row of zeros: the test would pass for a broken method"


def test_contrastive_target_is_logit_difference(tiny_llama):
    contrast = tiny_llama.tokenizer.convert_ids_to_tokens([30])[0]
    r = aw.attribute(tiny_llama, "the cat sat on the", method="saliency", max_new_tokens=2, contrast=30,
                     progress=False, per_dim=True)
    assert r.options["objective"] == "contrast_logit" and contrast
    e = input_embeds(tiny_llama, r)
    for i, (pos, tok) in enumerate(zip(r.target_positions, r.targets)):
        expected = gradient(tiny_llama, e, pos, tok.id, contrast_id=30).numpy()
        np.testing.assert_allclose(r.per_dim[i], expected, rtol=1e-4, atol=1e-6)
        # and it differs from the log-prob gradient: the contrast is really used
        plain = gradient(tiny_llama, e, pos, tok.id).numpy()
        assert not np.allclose(expected, plain, atol=1e-5)


def test_attention_matches_model_output(tiny):
    r = aw.attribute(tiny, "the dog sat on the log", method="attention", max_new_tokens=2, progress=False)
    ids = torch.tensor([[t.id for t in r.tokens]])
    with torch.no_grad():
        att = tiny.model(input_ids=ids, output_attentions=True).attentions
    for i, pos in enumerate(r.target_positions):
        for layer, a in enumerate(att):
            np.testing.assert_allclose(r.attention[i, layer, :, :pos], a[0, :, pos - 1, :pos].numpy(), atol=1e-6)
    np.testing.assert_allclose(r.attention[:, :, :, :].sum(-1), 1.0, atol=1e-5)
    one = aw.attribute(tiny, "the dog sat on the log", method="attention", max_new_tokens=2, progress=False,
                       layer=1, head=2)
    np.testing.assert_allclose(one.scores, one.attention[:, 1, 2], atol=1e-7)


def test_probability_and_entropy_per_target(tiny):
    r = aw.attribute(tiny, "one two three", method="saliency", max_new_tokens=3, progress=False)
    ids = torch.tensor([[t.id for t in r.tokens]])
    with torch.no_grad():
        logp = torch.log_softmax(tiny.model(input_ids=ids).logits[0].float(), -1)
    for i, (pos, tok) in enumerate(zip(r.target_positions, r.targets)):
        assert r.target_prob[i] == pytest.approx(float(logp[pos - 1, tok.id].exp()), rel=1e-4)
        h = float(-(logp[pos - 1].exp() * logp[pos - 1]).sum())
        assert r.target_entropy[i] == pytest.approx(h, rel=1e-4)
    # greedy: each generated token is the argmax
    for pos, tok in zip(r.target_positions, r.targets):
        assert int(logp[pos - 1].argmax()) == tok.id


def test_greedy_matches_transformers_generate(tiny):
    r = aw.attribute(tiny, "the cat sat", method="saliency", max_new_tokens=5, progress=False)
    ids = tiny.tokenizer("the cat sat", return_tensors="pt")["input_ids"]
    out = tiny.model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=tiny.tokenizer.pad_token_id,
                              eos_token_id=tiny.tokenizer.eos_token_id)
    theirs = out[0, ids.shape[1]:].tolist()
    ours = [t.id for t in r.targets]
    # Cached (transformers) and uncached (ours) logits differ in the last bits, and on a random model two
    # logits can be that close: the sequences must agree up to the first step whose top two logits are within
    # float32 noise of each other (with another CPU's kernels either side may then pick the other one).
    seq = torch.tensor([[t.id for t in r.tokens]])
    with torch.no_grad():
        logits = tiny.model(input_ids=seq).logits[0].float()
    for step, pos in enumerate(r.target_positions):
        top2 = logits[pos - 1].topk(2).values
        if float(top2[0] - top2[1]) < 1e-4 * max(1.0, float(top2[0].abs())):
            break
        assert ours[step] == theirs[step], (step, ours, theirs)
    else:
        assert ours == theirs


def test_frozen_parameters_overlapping_on_one_model_restore_only_at_the_last_exit():
    """Live views compute on worker threads: two overlapping freezes of one model must not switch the
    flags back on while the other still runs."""
    from attrwidgets.core.forward import frozen_parameters
    from attrwidgets.testing import tiny_handle

    model = tiny_handle("llama").model
    model.requires_grad_(True)  # a handle built elsewhere, with trainable parameters (ours are frozen at load)
    requires = lambda: {p.requires_grad for p in model.parameters()}
    first = frozen_parameters(model)
    second = frozen_parameters(model)
    first.__enter__()
    second.__enter__()
    assert requires() == {False}
    first.__exit__(None, None, None)  # the first to leave: the other one still runs
    assert requires() == {False}
    second.__exit__(None, None, None)
    assert requires() == {True}
