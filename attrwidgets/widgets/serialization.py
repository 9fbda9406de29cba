"""The one tensor serializer between the kernel and the browser, and the trait type that uses it.

Every tensor crosses as ``{"buffer": memoryview, "dtype": "float32" | "float16", "shape": [...]}``:
C-contiguous little-endian bytes that ipywidgets sends as a binary buffer (never a JSON list). The front-end
decodes it with ``new Float32Array(view.buffer, view.byteOffset, view.byteLength / 4)`` (js/lib/tensor.ts).
NaN is preserved: it means "not computed" in the views.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import traitlets

WIRE_DTYPES = ("float32", "float16")

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def to_numpy(value: Any) -> np.ndarray:
    """numpy array, torch tensor (any device, with grad) or nested list -> numpy array (no dtype change)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor, without importing torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def _check_real(array: np.ndarray, what: str = "tensor") -> None:
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold real numbers, got dtype {array.dtype}.")


def serialize_tensor(value: Any, dtype: str = "float32") -> dict | None:
    """Tensor-like -> ``{"buffer", "dtype", "shape"}`` (None stays None).

    dtype="float16" halves the bytes of large tensors (the front-end widens them back to float32);
    values beyond float16's range become inf, so use it for bounded data (probabilities, attention).
    """
    if value is None:
        return None
    if dtype not in WIRE_DTYPES:
        raise ValueError(f"wire dtype must be one of {WIRE_DTYPES}, got {dtype!r}.")
    array = to_numpy(value)
    _check_real(array)
    array = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
    return {"buffer": memoryview(array.tobytes()), "dtype": dtype, "shape": list(array.shape)}


def deserialize_tensor(value: dict | None, widget: Any = None) -> np.ndarray | None:
    """Inverse of serialize_tensor (float32 array, a copy)."""
    if value is None:
        return None
    dtype = value.get("dtype", "float32")
    if dtype not in WIRE_DTYPES:
        raise ValueError(f"wire dtype must be one of {WIRE_DTYPES}, got {dtype!r}.")
    shape = tuple(int(s) for s in value["shape"])
    array = np.frombuffer(bytes(value["buffer"]), dtype=np.dtype(dtype).newbyteorder("<"))
    if array.size != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"tensor buffer holds {array.size} values, shape {list(shape)} needs {np.prod(shape)}.")
    return array.reshape(shape).astype(np.float32)


def checksum(array: Any) -> str:
    """FNV-1a 32-bit over the raw little-endian float32 bytes of ``array`` (C order), as 8 hex digits.

    Identical to js/lib/checksum.ts; a view writes it for the row it shows (``data-checksum``), so a
    browser test can tell that the bytes it drew are the bytes the kernel sent.
    """
    data = np.ascontiguousarray(to_numpy(array), dtype="<f4").tobytes()
    h = _FNV_OFFSET
    for byte in data:  # rows are short (n_positions * 4 bytes); no need for a vectorised hash
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return f"{h:08x}"


class Tensor(traitlets.TraitType):
    """A float32 C-contiguous numpy array trait, sent as a binary buffer.

    Validates at the boundary (docs/architecture.md, house style 3): real dtype, the allowed number of dimensions and,
    optionally, fixed sizes per axis (None = any). Accepts numpy arrays, torch tensors and nested lists.
    """

    default_value = None
    info_text = "a float32 tensor (numpy array or torch tensor)"

    def __init__(self, ndim: int | tuple[int, ...] | None = None, shape: tuple | None = None,
                 wire_dtype: str = "float32", **kwargs: Any) -> None:
        kwargs.setdefault("allow_none", True)
        super().__init__(default_value=None, **kwargs)
        if wire_dtype not in WIRE_DTYPES:
            raise ValueError(f"wire_dtype must be one of {WIRE_DTYPES}, got {wire_dtype!r}.")
        self.ndim = (ndim,) if isinstance(ndim, int) else ndim
        self.shape = shape
        self.wire_dtype = wire_dtype
        self.metadata.setdefault("to_json", lambda value, widget: serialize_tensor(value, self.wire_dtype))
        self.metadata.setdefault("from_json", deserialize_tensor)

    def validate(self, obj: Any, value: Any) -> np.ndarray | None:
        if value is None:
            if self.allow_none:
                return None
            self.error(obj, value)
        try:
            array = to_numpy(value)
        except Exception as exc:
            raise traitlets.TraitError(f"{self._where(obj)} expects a tensor, got {type(value).__name__}.") from exc
        if array.dtype.kind not in "biuf":
            raise traitlets.TraitError(
                f"{self._where(obj)} expects real numbers, got dtype {array.dtype} ({type(value).__name__})."
            )
        if self.ndim is not None and array.ndim not in self.ndim:
            want = " or ".join(str(n) for n in self.ndim)
            raise traitlets.TraitError(
                f"{self._where(obj)} expects {want} dimension(s), got shape {tuple(array.shape)}."
            )
        fits = self.shape is None or (
            len(self.shape) == array.ndim and all(s is None or s == a for s, a in zip(self.shape, array.shape))
        )
        if not fits:
            raise traitlets.TraitError(f"{self._where(obj)} expects shape {self.shape}, got {tuple(array.shape)}.")
        return np.ascontiguousarray(array, dtype=np.float32)

    def _where(self, obj: Any) -> str:
        return f"The '{self.name}' trait of {type(obj).__name__}" if obj is not None else "Tensor trait"

    def make_dynamic_default(self) -> None:
        return None
