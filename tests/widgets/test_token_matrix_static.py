"""TokenMatrix from a computed Attribution: traits, wire format, validation at the boundary."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import traitlets

from attrwidgets.errors import AttrWidgetsError
from attrwidgets.widgets import TokenMatrix, checksum
from attrwidgets.widgets.base import NOT_BUILT_MESSAGE, bundle

from .support import HOSTILE, TARGETS, make_result, make_tokens, wire_state


def test_static_traits_sync(result):
    w = TokenMatrix(result, selected_target=1, normalization="global", hide_special=True)
    state = wire_state(w)
    assert state["tokens"][2] == {"id": 3, "text": HOSTILE, "clean": HOSTILE, "segment": "user", "special": False}
    assert state["target_positions"] == TARGETS
    np.testing.assert_array_equal(state["scores"], result.scores)
    np.testing.assert_allclose(state["target_prob"], result.target_prob)
    np.testing.assert_allclose(state["completeness_error"], result.completeness_error)
    assert state["selected_target"] == 1 and state["normalization"] == "global" and state["hide_special"] is True
    assert state["method"] == "integrated_gradients" and state["methods"] == ["integrated_gradients"]
    assert state["n_steps"] == 32 and state["llm_id"] == "fake-model" and state["busy"] is False
    assert checksum(state["scores"][1]) == checksum(result.scores[1])
    assert w.result is result and w.session is None
    w.wait()  # nothing to wait for


def test_optional_arrays_absent(result):
    r = dataclasses.replace(result, completeness_error=None, target_prob=None, target_entropy=None)
    state = wire_state(TokenMatrix(r))
    assert state["completeness_error"] is None and state["target_prob"] is None


def test_unknown_keyword_has_hint(result):
    with pytest.raises(TypeError, match="Did you mean 'normalization'"):
        TokenMatrix(result, normalisation="global")
    with pytest.raises(TypeError, match="Did you mean 'selected_target'"):
        TokenMatrix(result, selected_targets=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'scores'"):
        TokenMatrix(result, scores=np.zeros((3, 8)))  # data comes from the result


def test_malformed_inputs_raise_clear_errors(result, tiny):
    with pytest.raises(AttrWidgetsError, match="needs an Attribution"):
        TokenMatrix()
    with pytest.raises(AttrWidgetsError, match="expects an attrwidgets Attribution, got dict"):
        TokenMatrix({"scores": [[1.0]]})
    with pytest.raises(AttrWidgetsError, match="looks like a model handle"):
        TokenMatrix(tiny)
    with pytest.raises(AttrWidgetsError, match="not both"):
        TokenMatrix(result, prompt="hi")
    broken = make_result()
    broken.scores = np.zeros((2, 8), np.float32)  # mutated after construction: wrong number of rows
    with pytest.raises(AttrWidgetsError, match=r"\(n_targets, n_positions\)"):
        TokenMatrix(broken)


def test_trait_validation(result):
    w = TokenMatrix(result)
    with pytest.raises(traitlets.TraitError, match=r"scores must be \(n_targets, n_positions\)"):
        w.scores = np.zeros((3, 7))
    with pytest.raises(traitlets.TraitError, match="dimension"):
        w.scores = np.zeros(24)
    with pytest.raises(traitlets.TraitError, match="one value per target"):
        w.target_prob = np.zeros(2)
    with pytest.raises(traitlets.TraitError, match=r"selected_target must be -1 \(none\) or in \[0, 3\)"):
        w.selected_target = 3
    with pytest.raises(traitlets.TraitError, match=r"-1 \(none\) or in \[0, 3\)"):
        w.selected_target = -2
    w.selected_target = -1  # none selected: the same meaning as in every view (AttrWidget)
    assert w.selected_target == -1
    w.selected_target = 0
    with pytest.raises(traitlets.TraitError, match="at least 1"):
        w.n_steps = 0
    with pytest.raises(traitlets.TraitError):
        w.normalization = "minmax"
    with pytest.raises(traitlets.TraitError):
        w.sign_mode = "positive"
    with pytest.raises(traitlets.TraitError, match="segment"):
        w.tokens = [dict(t.to_dict(), segment="tool") for t in make_tokens()]
    with pytest.raises(traitlets.TraitError, match="lacks"):
        w.tokens = [{"id": 1, "text": "a"}]
    with pytest.raises(traitlets.TraitError, match="outside"):
        w.target_positions = [5, 6, 99]
    np.testing.assert_array_equal(w.scores, result.scores)  # nothing half-applied


def test_browser_writes_apply_and_static_method_stays(result):
    w = TokenMatrix(result)
    w.set_state({"selected_target": 2, "sign_mode": "absolute"})  # what a message from the view does
    assert w.selected_target == 2 and w.sign_mode == "absolute"
    w.set_state({"method": "saliency"})
    assert w.method == "integrated_gradients"
    assert "live mode" in w.error


def test_bundle_is_used_when_built_and_fallback_otherwise():
    assert "front-end not built: run npm ci && npm run build" in NOT_BUILT_MESSAGE
    fallback = bundle("no_such_view")
    assert isinstance(fallback, str) and NOT_BUILT_MESSAGE in fallback and "export default" in fallback
    esm = TokenMatrix.class_traits().get("_esm") or TokenMatrix._esm
    assert "export" in str(esm) or str(esm).endswith("token_matrix.js")


def test_imports_and_shows_message_without_bundle():
    """With the bundle missing, the widget still imports, constructs, and its view is the 'not built' note."""
    code = (
        "import pathlib\n"
        "real = pathlib.Path.is_file\n"
        "pathlib.Path.is_file = lambda p: p.name != 'token_matrix.js' and real(p)\n"
        "from attrwidgets.core.token.result import Attribution\n"
        "from attrwidgets.core.tokens import Token\n"
        "from attrwidgets.widgets import TokenMatrix\n"
        "w = TokenMatrix(Attribution([Token(1, 'a', 'a', 'prompt'), Token(2, 'b', 'b', 'generated')], [1],"
        " [[0.5, 0.0]], 'saliency'))\n"
        "print(w._esm)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert NOT_BUILT_MESSAGE in out and "export default" in out


def test_repr_is_cheap_and_informative(result):
    assert repr(TokenMatrix(result)).startswith("TokenMatrix(method='integrated_gradients', 8 tokens, 3 targets")


def test_an_example_of_a_dataset_run_opens_in_the_matrix(tmp_path):
    """aw.attribute_dataset's ds[id] is an Attribution: the static view shows it, hostile token text included."""
    import attrwidgets as aw
    from attrwidgets.testing import tiny_handle

    data = [{"id": "a", "text": "The capital of France is"}, {"id": "b", "text": "<img src=x onerror=alert(1)> tokens"}]
    ds = aw.attribute_dataset(data, model=tiny_handle("llama"), method="integrated_gradients", n_steps=4,
                              out=tmp_path / "out", max_new_tokens=2, progress=False)
    for example_id in ("a", "b"):
        example = ds[example_id]
        state = wire_state(TokenMatrix(example))
        np.testing.assert_array_equal(state["scores"], example.scores)
        assert state["target_positions"] == example.target_positions
        np.testing.assert_allclose(state["completeness_error"], example.completeness_error)
    assert any("onerror" in t["clean"] for t in wire_state(TokenMatrix(ds["b"]))["tokens"])
