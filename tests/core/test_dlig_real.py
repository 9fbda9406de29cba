"""Layer IG on the real default model (SmolLM2-135M-Instruct): resuming after a middle block."""

import numpy as np
import pytest
import torch

import attrwidgets as aw

pytestmark = pytest.mark.real_model


def test_layer_ig_at_a_middle_block_of_the_default_model(real_model):
    r = aw.layer_ig(real_model, "The capital of France is", layer="model.layers.10", target=" Paris",
                    n_steps=16, quadrature="gauss_legendre", progress=False)
    assert r.options["layer"] == "block 10" and r.method == "layer_integrated_gradients"
    pos = r.target_positions[0]
    assert np.all(r.scores[0, pos:] == 0) and np.all(np.isfinite(r.completeness_error))
    # the reported f(h) is the real log-probability of ' Paris' (the resumed forward reproduces the model)
    ids = torch.tensor([t.id for t in r.tokens[:pos]])
    with torch.no_grad():
        logits = real_model.model(input_ids=ids.unsqueeze(0)).logits[0, -1].float()
    assert r.options["f_input"][0] == pytest.approx(float(torch.log_softmax(logits, -1)[r.tokens[pos].id]), abs=1e-4)
