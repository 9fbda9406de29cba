"""Dream and LLaDA checkpoints loaded without their remote code (core/diffusion_layouts.py, docs/methods/dlig.md):
tiny random checkpoints written in each published layout (tests/core/diffusion_layout_support.py) and loaded back
with aw.load_model(folder, masked_lm=True). The sampler's own properties run on both in tests/core/test_dlig.py
(parametrized over the tiny BERT, Dream and LLaDA)."""

from __future__ import annotations

import copy
import json
import re
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import attrwidgets as aw
from attrwidgets.core.dlig.diffusion import mask_id_of
from attrwidgets.errors import AttrWidgetsError
from tests.core.diffusion_layout_support import LAYOUTS, folder, loaded, reference_logits, write

EPS = float(np.finfo(np.float32).eps)


def sequences(h):
    """A prompt followed by mask tokens (what the sampler feeds), and the same with a few unmasked."""
    prompt = h.tokenizer("the cat sat on the mat")["input_ids"]
    mask = mask_id_of(h)
    masked = torch.tensor(prompt + [mask] * 6)
    partly = masked.clone()
    partly[-6::2] = torch.tensor(prompt[:3])
    return [masked, partly]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_logits_equal_an_independent_forward_from_the_raw_tensors(layout):
    """The loaded model against a forward written from the checkpoint's own tensors and config.json fields, in plain
    torch (the reference: embedding, RMSNorm, rotary, full attention, SwiGLU; Dream's logit shift)."""
    h = loaded(layout)
    for ids in sequences(h):
        with torch.no_grad():
            ours = h.model(input_ids=ids.unsqueeze(0)).logits[0]
        expected = reference_logits(layout, folder(layout), ids)
        assert ours.shape == expected.shape == (len(ids), h.model.config.vocab_size)
        # float32 rounding through two blocks' sums of 32 to 64 terms (measured: about 5 eps of the largest logit)
        tol = 64 * EPS * float(expected.abs().max())
        assert float((ours - expected).abs().max()) <= tol


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_attention_is_bidirectional(layout, attention):
    """Changing the LAST token changes the logits at the first positions; a causal copy of the same weights (the
    stock transformers model) keeps them bit for bit, so the check can tell the two apart."""
    h = aw.load_model(folder(layout), masked_lm=True)
    h.model.set_attn_implementation(attention)
    ids = sequences(h)[1]
    later = ids.clone()
    later[-1] = (int(ids[-1]) + 1) % len(h.tokenizer)
    config = copy.deepcopy(h.model.config)
    config.is_causal = True
    causal = type(h.model).__mro__[1](config)  # Qwen2ForCausalLM / LlamaForCausalLM, as transformers ships them
    causal.load_state_dict(h.model.state_dict())
    causal.set_attn_implementation(attention)
    with torch.no_grad():
        ours = [h.model(input_ids=x.unsqueeze(0)).logits[0] for x in (ids, later)]
        theirs = [causal(input_ids=x.unsqueeze(0)).logits[0] for x in (ids, later)]
    first = 1 if layout == "dream" else 0  # Dream's position 1 is predicted at 0, which sees only itself when causal
    assert float((ours[0][first] - ours[1][first]).abs().max()) > 1e-3
    assert torch.equal(theirs[0][0], theirs[1][0])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_handle_is_a_bidirectional_masked_lm_with_its_mask_token_from_the_config(layout):
    h = loaded(layout)
    config = json.loads((folder(layout) / "config.json").read_text())
    assert (h.adapter.name, h.adapter.causal, h.adapter.next_token_logits) == (layout, False, layout == "dream")
    assert mask_id_of(h) == h.model.config.mask_token_id == config["mask_token_id"]
    if layout == "dream":  # its tokenizer names <|mask|>, and config.json the same id
        assert h.tokenizer.mask_token == "<|mask|>" and h.tokenizer.mask_token_id == config["mask_token_id"]
    else:  # LLaDA's tokenizer names no mask token: config.json's mask_token_id is <|mdm_mask|>
        assert h.tokenizer.mask_token_id is None
        assert h.tokenizer.convert_ids_to_tokens(config["mask_token_id"]) == "<|mdm_mask|>"
    text = aw.describe_boundaries(h)
    assert f"adapter '{layout}', 2 blocks" in text and "model.layers.{i}.mlp.down_proj  (Linear)" in text
    assert not any(f"modeling_{name}" in module or f"tokenization_{name}" in module
                   for module in sys.modules for name in LAYOUTS)  # their remote code never ran


@pytest.mark.parametrize("layout", LAYOUTS)
def test_methods_that_need_a_causal_lm_refuse(layout):
    h = loaded(layout)
    with pytest.raises(AttrWidgetsError, match="needs a causal LM with an LM head"):
        aw.attribute(h, "the cat", method="saliency", max_new_tokens=1)
    with pytest.raises(AttrWidgetsError, match="supports causal LMs"):
        aw.depass(h, "the cat sat")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layer_roles_and_module_paths_resolve_to_the_same_boundary(layout):
    h = loaded(layout)
    kw = {"gen_length": 4, "denoising_steps": 2, "n_steps": 4, "progress": False}
    a = aw.dlig(h, "the cat", layer="block 1 mlp", **kw)
    b = aw.dlig(h, "the cat", layer="model.layers.1.mlp", **kw)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.layer == b.layer == "block 1 mlp"


# -- bad input ---------------------------------------------------------------------------------------------------
def _edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, **changes}))


def test_remote_code_attrwidgets_does_not_know_names_the_layouts_it_loads(tmp_path):
    path = write("dream", tmp_path / "other")
    _edit_config(path, model_type="mdm_x", architectures=["MdmXModel"], auto_map={"AutoModel": "modeling_mdm_x.MdmX"})
    for masked_lm in (True, False):
        with pytest.raises(AttrWidgetsError) as err:
            aw.load_model(path, masked_lm=masked_lm)
        assert "modeling_mdm_x" in str(err.value) and "Dream (model_type 'dream'" in str(err.value)
        assert "LLaDA (model_type 'llada', LLaDAModelLM)" in str(err.value) and "trust_remote_code=True" in str(err.value)


@pytest.mark.parametrize("layout, weight", [("dream", "model.layers.1.mlp.down_proj.weight"),
                                            ("llada", "model.transformer.blocks.1.ff_out.weight"),
                                            ("llada", "model.transformer.ff_out.weight")])
def test_a_missing_weight_is_named_as_the_checkpoint_names_it(layout, weight, tmp_path):
    path = write(layout, tmp_path / layout)
    weights = load_file(str(path / "model.safetensors"))
    del weights[weight]
    save_file(weights, str(path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(AttrWidgetsError, match=f"lacks the weight '{weight}' of the"):
        aw.load_model(path, masked_lm=True)


def test_a_diffusion_checkpoint_loaded_as_a_causal_lm_says_masked_lm(tmp_path):
    with pytest.raises(AttrWidgetsError, match=r"masked-diffusion LM in the Dream layout.*masked_lm=True"):
        aw.load_model(folder("dream"))


@pytest.mark.parametrize("layout, field, value", [("llada", "block_type", "sequential"),
                                                  ("llada", "include_qkv_bias", True),
                                                  ("dream", "rope_scaling", {"rope_type": "linear", "factor": 2.0})])
def test_a_config_the_translation_does_not_compute_is_refused(layout, field, value, tmp_path):
    path = write(layout, tmp_path / layout)
    _edit_config(path, **{field: value})
    with pytest.raises(AttrWidgetsError, match=f"has {field}="):
        aw.load_model(path, masked_lm=True)


def test_a_mask_token_the_tokenizer_and_the_config_disagree_on(tmp_path):
    path = write("dream", tmp_path / "dream")
    mask_id = json.loads((path / "config.json").read_text())["mask_token_id"]
    _edit_config(path, mask_token_id=3)
    says = f"mask token '<|mask|>' is id {mask_id} but config.json's mask_token_id is 3"
    with pytest.raises(AttrWidgetsError, match=re.escape(says)):
        aw.load_model(path, masked_lm=True)


@pytest.mark.parametrize("field, value, says", [("mlp_hidden_size", 48, "shaped otherwise than its config.json says"),
                                                ("n_heads", "four", "config.json does not translate")])
def test_a_config_that_does_not_fit_its_weights_is_a_clear_error(field, value, says, tmp_path):
    path = write("llada", tmp_path / "llada")
    _edit_config(path, **{field: value})
    with pytest.raises(AttrWidgetsError, match=says):
        aw.load_model(path, masked_lm=True)
