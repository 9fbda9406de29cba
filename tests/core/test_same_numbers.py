"""Same inputs, same numbers: a row's scores do not depend on which other rows were computed with it, nor on the
batch size (docs/methods/token.md). A live view computes one row per click, a script all rows at once: both must
show the same figures, up to float32 noise."""

import functools

import numpy as np
import pytest

import attrwidgets as aw
from attrwidgets.testing import tiny_handle

PROMPT = "The capital of France is"
CASES = [
    ("saliency", {}),
    ("input_x_gradient", {}),
    ("attention", {}),
    ("integrated_gradients", {"n_steps": 16}),  # the adaptive rule: nodes chosen per target
    ("integrated_gradients", {"n_steps": 8, "quadrature": "gauss_legendre"}),
    ("integrated_gradients", {"n_steps": 8, "quadrature": "riemann_right", "baseline": "zero"}),
    ("layer_integrated_gradients", {"layer": "block 0", "n_steps": 16}),
    ("layer_integrated_gradients", {"layer": "block 1 attn", "n_steps": 8, "quadrature": "trapezoid"}),
]


@functools.cache
def session(arch):
    return aw.AttributionSession(tiny_handle(arch), PROMPT, max_new_tokens=4)


def assert_same(a, b, what):
    """float32 noise of the same sums taken in another batch composition."""
    scale = max(1e-30, float(np.nanmax(np.abs(b))))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * scale, err_msg=what)


def assert_same_error(a, b, result, what, rows=slice(None)):
    """Completeness errors are residuals relative to the gap f(x) - f(x'): float32 noise in f (~1e-6 of |f|)
    moves them by that over |gap|, while a different node set moves them by far more."""
    f1, f0 = np.array(result.options["f_input"])[rows], np.array(result.options["f_baseline"])[rows]
    atol = 1e-5 + 2e-6 * (np.abs(f1) + np.abs(f0)) / np.maximum(np.abs(f1 - f0), 1e-12)
    assert np.all(np.abs(np.asarray(a) - np.asarray(b)) <= atol), (what, a, b, atol)


def test_every_registered_method_is_covered():
    assert {m for m, _ in CASES} == set(aw.list_methods())


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "olmo2", "gpt_neox"])
@pytest.mark.parametrize("method, options", CASES)
def test_one_row_alone_equals_that_row_among_all(arch, method, options):
    s = session(arch)
    full = s.compute(method, progress=False, **options)
    for row in range(len(s.target_positions)):
        alone = s.compute(method, rows=[row], progress=False, **options)
        assert_same(alone.scores[row], full.scores[row], f"{method} row {row} alone")
        if full.completeness_error is not None:
            assert_same_error(alone.completeness_error[row], full.completeness_error[row], full,
                              f"{method} error, row {row}", rows=row)
    pair = s.compute(method, rows=[3, 1], progress=False, **options)
    assert_same(pair.scores[[1, 3]], full.scores[[1, 3]], f"{method} rows 1 and 3")


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("method, options", [c for c in CASES if c[0] != "attention" and "n_steps" in c[1]])
@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_the_batch_size_changes_no_number(arch, method, options, batch_size):
    s = session(arch)
    default = s.compute(method, progress=False, **options)
    other = s.compute(method, progress=False, batch_size=batch_size, **options)
    assert_same(other.scores, default.scores, f"{method} at batch_size={batch_size}")
    assert_same_error(other.completeness_error, default.completeness_error, default,
                      f"{method} error at batch_size={batch_size}")


@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_lig_one_target_alone_and_any_batch_size_equal_the_full_run(arch):
    h = tiny_handle(arch)
    text, layers = "the cat sat on the mat", [0, 1]
    full = aw.lig(h, text, layers=layers, n_steps=8)
    for j in (1, 3):
        alone = aw.lig(h, text, layers=layers, n_steps=8, target_tokens=[j])
        for layer in layers:
            assert_same(alone.z2z[layer][j], full.z2z[layer][j], f"LIG z2z layer {layer} target {j} alone")
            assert_same(alone.u2z[layer][j], full.u2z[layer][j], f"LIG u2z layer {layer} target {j} alone")
            assert_same(alone.z2u[layer][j], full.z2u[layer][j], f"LIG z2u layer {layer} target {j} alone")
    other = aw.lig(h, text, layers=layers, n_steps=8, batch_size=3)
    for layer in layers:
        assert_same(other.z2z[layer], full.z2z[layer], f"LIG z2z layer {layer} at batch_size=3")
