"""A chunk that does not fit the device's memory is halved and retried (core/chunks.py): the numbers are the
same as without the error, the smaller size is kept, and one path point that does not fit is a clear error.
CUDA's OutOfMemoryError is injected on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attrwidgets as aw
from attrwidgets.core import chunks
from attrwidgets.core.forward import TargetFunction
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import tiny_handle

PROMPT = "The capital of France is"


def _oom_above(limit: int, original, seen: list):
    def patched(self, x, *args, **kwargs):
        seen.append(x.shape[0])
        if x.shape[0] > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, x, *args, **kwargs)

    return patched


@pytest.mark.parametrize("quadrature", ["gauss_legendre", "adaptive"])
def test_token_ig_halves_its_batch_and_gives_the_same_numbers(quadrature, monkeypatch):
    handle = tiny_handle("llama")
    kwargs = {"method": "integrated_gradients", "n_steps": 16, "quadrature": quadrature, "max_new_tokens": 2,
              "batch_size": 16, "progress": False}
    clean = aw.attribute(handle, PROMPT, **kwargs)
    seen = []
    monkeypatch.setattr(TargetFunction, "values_and_grads",
                        _oom_above(3, TargetFunction.values_and_grads, seen))
    monkeypatch.setattr(TargetFunction, "values_at", _oom_above(3, TargetFunction.values_at, []))
    squeezed = aw.attribute(handle, PROMPT, **kwargs)
    np.testing.assert_allclose(squeezed.scores, clean.scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(squeezed.completeness_error, clean.completeness_error, rtol=0, atol=2e-5)
    assert any(s > 3 for s in seen)  # the injected error did happen, and the numbers are the same


def test_lig_halves_its_chunk_and_gives_the_same_numbers(monkeypatch):
    from attrwidgets.core.lig import routes

    handle = tiny_handle("llama")
    clean = aw.lig(handle, "the cat sat on the mat", layers=[1], n_steps=8, granularity="layer")
    seen = []
    original = routes.block_output_at

    def patched(b, layer, points, rows):
        seen.append(points.shape[0])
        if points.shape[0] > 5:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return original(b, layer, points, rows)

    monkeypatch.setattr(routes, "block_output_at", patched)
    squeezed = aw.lig(handle, "the cat sat on the mat", layers=[1], n_steps=8, granularity="layer")
    np.testing.assert_allclose(squeezed.z2z[1], clean.z2z[1], rtol=1e-4, atol=1e-7)
    assert max(seen) > 5 and seen[-1] <= 5


def test_one_point_that_does_not_fit_is_a_clear_error():
    def run(start, stop):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(AttrWidgetsError, match="chunks of a single item .path point or position.: use a shorter prompt"):
        chunks.run_in_chunks(10, 8, run)
    with pytest.raises(ValueError, match="not memory"):  # other errors pass through at once
        chunks.run_in_chunks(10, 8, lambda a, b: (_ for _ in ()).throw(ValueError("not memory")))
    done = []
    assert chunks.run_in_chunks(10, 4, lambda a, b: done.append((a, b))) == 4
    assert done == [(0, 4), (4, 8), (8, 10)]


@pytest.mark.parametrize("transcoder", [False, True])
def test_attribution_graph_halves_its_row_batch_and_gives_the_same_graph(transcoder, monkeypatch):
    from attrwidgets.core.graph.sweep import Sweep
    from tests.core.graph_reference import random_transcoder

    handle = tiny_handle("llama")
    kwargs = {"progress": False, "batch_size": 16}
    if transcoder:
        kwargs["transcoder"] = random_transcoder(2, 32)
    clean = aw.attribution_graph(handle, PROMPT, **kwargs)
    seen, original = [], Sweep.rows

    def patched(self, reads, n_rows, *args, **kw):
        seen.append(n_rows)
        if n_rows > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
        return original(self, reads, n_rows, *args, **kw)

    monkeypatch.setattr(Sweep, "rows", patched)
    squeezed = aw.attribution_graph(handle, PROMPT, **kwargs)
    assert any(n > 3 for n in seen) and max(seen[-3:]) <= 3
    A, B = clean.adjacency.numpy(), squeezed.adjacency.numpy()
    np.testing.assert_allclose(B, A, rtol=1e-5, atol=1e-6 * np.abs(A).max())


@pytest.mark.parametrize("level", ["token", "head"])
def test_depass_halves_its_position_chunks_and_gives_the_same_decomposition(level, monkeypatch):
    from attrwidgets.core import frozen_ops

    handle = tiny_handle("llama")
    kwargs = {"level": level, "layer": 0 if level == "head" else None, "progress": False}
    prompt = " ".join([PROMPT] * 5)  # long enough for chunks of several positions at the token level
    clean = aw.depass(handle, prompt, **kwargs)
    seen, original = [], frozen_ops.grouped_attention

    def patched(attention, vt, n, hd, t0, t1):
        if n == 2:  # the head level's seed (stream and bias through every head): not a propagation chunk
            return original(attention, vt, n, hd, t0, t1)
        seen.append(t1 - t0)
        if t1 - t0 > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return original(attention, vt, n, hd, t0, t1)

    monkeypatch.setattr(frozen_ops, "grouped_attention", patched)
    squeezed = aw.depass(handle, prompt, **kwargs)
    assert any(size > 2 for size in seen) and max(seen[-3:]) <= 2  # the error happened; smaller chunks worked
    np.testing.assert_allclose(squeezed.states, clean.states, rtol=1e-5, atol=1e-6 * np.abs(clean.states).max())
    assert squeezed.completeness_error < 1e-4
