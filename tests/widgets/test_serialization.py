"""The one tensor serializer and the Tensor trait: dtype, shape, NaN, layout, validation, checksum."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets
from ipywidgets.widgets.widget import _remove_buffers

from attrwidgets.widgets.serialization import Tensor, checksum, deserialize_tensor, serialize_tensor


def test_round_trip_float32_shape_and_nan():
    a = np.array([[1.5, np.nan, -2.0], [np.inf, 0.0, 3.25]], dtype=np.float32)
    wire = serialize_tensor(a)
    assert wire["dtype"] == "float32" and wire["shape"] == [2, 3]
    assert isinstance(wire["buffer"], memoryview) and len(wire["buffer"]) == a.size * 4
    back = deserialize_tensor(wire)
    assert back.dtype == np.float32 and back.shape == (2, 3)
    np.testing.assert_array_equal(back, a)  # NaN positions compare equal here
    assert np.isnan(back[0, 1]) and np.isposinf(back[1, 0])


def test_non_contiguous_and_other_dtypes_become_c_contiguous_float32():
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    for view in (base.T, base[:, ::2], base[::-1]):
        assert not view.flags.c_contiguous
        back = deserialize_tensor(serialize_tensor(view))
        np.testing.assert_array_equal(back, view.astype(np.float32))
        assert back.shape == view.shape
    ints = np.arange(5, dtype=np.int64)
    np.testing.assert_array_equal(deserialize_tensor(serialize_tensor(ints)), ints.astype(np.float32))


def test_torch_tensors_any_dtype_with_grad():
    t = torch.linspace(-1, 1, 6, requires_grad=True).reshape(2, 3) * 2
    np.testing.assert_allclose(deserialize_tensor(serialize_tensor(t)), t.detach().numpy())
    b = torch.tensor([[0.5, float("nan")]], dtype=torch.bfloat16)
    back = deserialize_tensor(serialize_tensor(b))
    assert back[0, 0] == 0.5 and np.isnan(back[0, 1])
    np.testing.assert_array_equal(deserialize_tensor(serialize_tensor(t.detach().T)), t.detach().T.numpy())


def test_float16_wire_halves_bytes_and_keeps_nan():
    a = np.array([0.1, np.nan, -3.0, 65504.0], np.float32)
    wire = serialize_tensor(a, dtype="float16")
    assert wire["dtype"] == "float16" and len(wire["buffer"]) == 8
    back = deserialize_tensor(wire)
    assert back.dtype == np.float32 and np.isnan(back[1])
    np.testing.assert_allclose(back[[0, 2, 3]], a[[0, 2, 3]], rtol=1e-3)


def test_serializer_rejects_bad_input():
    assert serialize_tensor(None) is None and deserialize_tensor(None) is None
    with pytest.raises(TypeError, match="real numbers"):
        serialize_tensor(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="real numbers"):
        serialize_tensor(np.array([1 + 2j]))
    with pytest.raises(ValueError, match="wire dtype"):
        serialize_tensor(np.zeros(2), dtype="int8")
    with pytest.raises(ValueError, match="needs"):
        deserialize_tensor({"buffer": memoryview(b"\0" * 8), "dtype": "float32", "shape": [3]})


def test_buffers_travel_as_binary_not_json():
    wire = {"scores": serialize_tensor(np.ones((2, 2)))}
    state, paths, buffers = _remove_buffers(wire)
    assert paths == [["scores", "buffer"]] and len(buffers) == 1
    assert "buffer" not in state["scores"] and state["scores"]["shape"] == [2, 2]


def _fnv1a(data: bytes) -> str:  # textbook FNV-1a, to pin the definition shared with js/lib/checksum.ts
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) % 2**32
    return f"{h:08x}"


def test_checksum_is_fnv1a_over_float32_little_endian_bytes():
    assert checksum(np.zeros(0)) == "811c9dc5"  # FNV offset basis
    assert _fnv1a(b"a") == "e40c292c"  # published FNV-1a 32-bit test vector
    row = np.array([0.5, -1.25, np.nan, 3.0], np.float32)
    assert checksum(row) == _fnv1a(row.astype("<f4").tobytes())
    assert checksum(row.astype(np.float64)) == checksum(row)  # hashes the float32 the browser receives
    assert checksum(torch.tensor(row)) == checksum(row)
    assert checksum(row) != checksum(row[::-1])


class Holder(traitlets.HasTraits):
    matrix = Tensor(ndim=2)
    vector = Tensor(ndim=1, shape=(3,))
    either = Tensor(ndim=(1, 2), allow_none=False)


def test_tensor_trait_validates_and_normalises():
    h = Holder(either=[1, 2])
    h.matrix = np.arange(6, dtype=np.int32).reshape(2, 3).T
    assert h.matrix.dtype == np.float32 and h.matrix.flags.c_contiguous and h.matrix.shape == (3, 2)
    h.matrix = torch.ones(1, 4)
    assert isinstance(h.matrix, np.ndarray)
    h.matrix = None
    assert h.matrix is None
    with pytest.raises(traitlets.TraitError, match="expects 2 dimension"):
        h.matrix = np.zeros(3)
    with pytest.raises(traitlets.TraitError, match=r"expects shape \(3,\)"):
        h.vector = np.zeros(4)
    with pytest.raises(traitlets.TraitError, match="real numbers"):
        h.matrix = np.array([["a"]])
    with pytest.raises(traitlets.TraitError, match="expects 1 or 2"):
        h.either = np.zeros((1, 1, 1))
    with pytest.raises(traitlets.TraitError):
        h.either = None


def test_tensor_trait_serializes_through_ipywidgets():
    from attrwidgets.widgets import TokenMatrix

    trait = TokenMatrix.class_traits()["scores"]
    assert trait.metadata["sync"] is True
    wire = trait.metadata["to_json"](np.eye(2), None)
    assert wire["dtype"] == "float32" and isinstance(wire["buffer"], memoryview)
