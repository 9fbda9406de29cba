"""One contract for every result type (docs/architecture.md, "Results and their files"): to_dict() in our schema
with `schema` and `version`, holding what save() wrote; save() -> Path; to_dataframe(); to_html(path); external
layouts named by who reads them, the old names still working with a DeprecationWarning."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import attrwidgets as aw
from attrwidgets.core.bundle_io import bundle_paths
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import tiny_handle
from tests.core.result_samples import PROMPT, results

VIEW_OF = {"attribution": "aw-token-matrix", "decomposition": "aw-token-matrix", "heads": "aw-head-grid",
           "lig": "aw-layer-flow", "diffusion": "aw-diffusion-timeline", "graph": "aw-graph-view"}


@pytest.fixture(scope="module")
def handle():
    return tiny_handle("llama")


@pytest.fixture(scope="module")
def samples(handle):
    return dict(results(handle))


def _array(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64) if value is not None else None  # null (not computed) -> NaN


def test_to_dict_is_our_schema_and_holds_what_save_wrote(samples, tmp_path):
    from safetensors.numpy import load_file

    for name, result in samples.items():
        d = result.to_dict()
        json.dumps(d, allow_nan=False)  # JSON-able as it is: NaN is null, never NaN
        saved = result.save(tmp_path / name)
        header = json.loads(saved.read_text())
        assert (d["schema"], d["version"]) == (header["schema"], header["version"]), name
        assert d["schema"].startswith("attrwidgets.") and d["version"] == 1, name
        back = aw.load(saved).to_dict()
        if name == "heads":  # the patterns are stored in float16 (HeadContributions.save)
            np.testing.assert_allclose(_array(back.pop("attention")), _array(d["attention"]), atol=1e-3)
            back["attention"] = d["attention"]
        assert back == d, name  # the file and the dict say the same thing
        tensors = bundle_paths(saved)[1]
        if tensors.exists():  # a bundle: every array in the dict equals the one in the safetensors file
            for key, value in load_file(str(tensors)).items():
                tolerance = 1e-3 if value.dtype == np.float16 else 0
                np.testing.assert_allclose(_array(d[key]), value.astype(np.float64), atol=tolerance, err_msg=key)


def test_save_returns_the_path_and_every_type_has_a_long_table(samples, tmp_path):
    for name, result in samples.items():
        path = result.save(tmp_path / name)
        assert path.is_file(), name
        assert len(result.to_dataframe()) > 0, name


def test_to_html_is_a_method_of_every_result_and_shows_its_view(samples, tmp_path):
    for name, result in samples.items():
        page = result.to_html(tmp_path / f"{name}.html")
        assert (tmp_path / f"{name}.html").read_text(encoding="utf-8") == page, name
        assert VIEW_OF[name] in page, name
        assert page == aw.to_html(result), name  # the method and the function are one thing


def test_a_token_decomposition_is_an_attribution_whose_rows_are_the_logit(handle):
    """Row i: each source token's part of the logit of the token at target t, read from the state at t - 1.
    With the bias component's part the row is the real logit (DePass is exact)."""
    d = aw.depass(handle, PROMPT, progress=False, max_new_tokens=2)
    a = d.as_attribution()
    assert a.method == "depass" and a.options["score"] == "logit"
    assert a.target_positions == [i for i, t in enumerate(d.tokens) if t.segment == "generated"]
    with torch.no_grad():
        logits = handle.model(torch.tensor([[t.id for t in d.tokens]])).logits[0].double().numpy()
    for i, t in enumerate(a.target_positions):
        token_id = d.tokens[t].id
        bias_part = d.logit_scores(token_id)[t - 1, -1]
        scale = np.abs(logits[t - 1]).max()
        assert abs(a.scores[i].sum() + bias_part - logits[t - 1, token_id]) <= 1e-4 * scale
        assert np.all(a.scores[i, t:] == 0)  # a later token has no part in the state at t - 1
    assert aw.TokenMatrix(d).result.method == "depass"


def test_a_loaded_decomposition_shows_norms_and_other_levels_say_why_not(handle, tmp_path):
    d = aw.depass(handle, PROMPT, progress=False)
    back = aw.load(d.save(tmp_path / "d"))  # a file keeps no unembedding: the view falls back to norms
    a = back.as_attribution()
    assert a.method == "depass_l2" and a.target_positions == list(range(1, len(d.tokens)))
    np.testing.assert_allclose(a.scores[0, 0], np.linalg.norm(d.states[0, 0]), rtol=1e-6)
    heads = aw.depass(handle, PROMPT, level="head", layer=0, progress=False)
    with pytest.raises(AttrWidgetsError, match="Only a token-level Decomposition has a token view"):
        heads.to_html()


def test_external_layouts_are_named_by_their_reader_and_old_names_warn(samples, tmp_path):
    graph, lig, attribution = samples["graph"], samples["lig"], samples["attribution"]
    viewer = graph.to_viewer_json(tmp_path / "viewer.json")
    assert json.loads((tmp_path / "viewer.json").read_text()) == viewer and "qParams" in viewer
    with pytest.warns(DeprecationWarning, match="to_viewer_json"):
        assert graph.to_json() == graph.to_viewer_json()
    upstream = lig.to_lig_json(tmp_path / "lig.json")
    assert json.loads((tmp_path / "lig.json").read_text()) == upstream and "schema" not in upstream
    with pytest.warns(DeprecationWarning, match="to_lig_json"):
        assert lig.to_json(tmp_path / "old.json") == tmp_path / "old.json"
    assert json.loads((tmp_path / "old.json").read_text()) == upstream
    lens = attribution.to_tokenlens(tmp_path / "lens.json")
    assert json.loads((tmp_path / "lens.json").read_text()) == lens


def test_one_keyword_means_one_thing_and_old_names_warn(tmp_path):
    from attrwidgets.testing import tiny_masked_lm

    mlm = tiny_masked_lm(seed=0)
    new = aw.dlig(mlm, "the cat", gen_length=4, denoising_steps=2, n_steps=2, progress=False)
    with pytest.warns(DeprecationWarning, match="steps= is renamed denoising_steps="):
        old = aw.dlig(mlm, "the cat", gen_length=4, steps=2, n_steps=2, progress=False)
    np.testing.assert_array_equal(old.scores, new.scores)
    assert new.options["denoising_steps"] == 2 and new.n_denoising_steps == 2
    with pytest.warns(DeprecationWarning, match="n_denoising_steps"):
        assert new.n_steps == 2
    with pytest.raises(AttrWidgetsError, match="got both 'steps' and 'denoising_steps'"):
        aw.dlig(mlm, "the cat", steps=2, denoising_steps=2)
    with (pytest.warns(DeprecationWarning, match="steps= is renamed training_steps="),
          pytest.raises(AttrWidgetsError, match="training_steps must be a positive integer")):
        aw.train_transcoder(tiny_handle("llama"), ["a b"], steps=0, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names warn about nothing
        aw.dlig(mlm, "the cat", gen_length=4, denoising_steps=2, n_steps=2, progress=False)
