"""The array encodings of Inseq's saved files, decoded with numpy alone (Inseq is not a dependency).

Inseq 0.7 stores each tensor as a one-tensor safetensors file (key "attribution") in base64. Inseq 0.6 and earlier
stored numpy blocks: {"__ndarray__": "b64:..." or "b64.gz:..." (raw C-order bytes, gzipped when that saved room)
or nested lists, "dtype", "shape"}; `use_primitives=True` saves give plain nested lists. The safetensors layout
is parsed here rather than by the safetensors package: it is 8 bytes of header length, a JSON header and the raw
bytes, and Inseq's float16/float8 precisions (scores_precision) need dtypes numpy's safetensors loader lacks.
Every size is checked against the bytes present before anything is allocated, so a damaged file is refused,
never trusted.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import math
import zlib

import numpy as np

from attrwidgets.errors import AttrWidgetsError

TENSOR_KEY = "attribution"  # the one key Inseq gives the tensor inside each safetensors blob
MAX_HEADER = 1 << 20  # a one-tensor header is ~100 bytes; a huge declared length is damage, not data
_NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
                 "U8": "u1", "BOOL": "?"}
_ITEMSIZE = {**{k: np.dtype(v).itemsize for k, v in _NUMPY_DTYPES.items()}, "BF16": 2, "F8_E4M3": 1}
# dtypes an old-layout numpy block may name; object arrays would need unpickling and are refused
_BLOCK_DTYPES = {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"}


def _float8_e4m3fn_table() -> np.ndarray:
    """The 256 values of float8 e4m3fn (torch.float8_e4m3fn, Inseq's "float8" precision): 4 exponent bits with
    bias 7, 3 mantissa bits, no infinities, NaN at S.1111.111."""
    bits = np.arange(256)
    sign = np.where(bits & 0x80, -1.0, 1.0)
    exp, man = (bits >> 3) & 0xF, bits & 0x7
    value = np.where(exp == 0, man / 8 * 2.0**-6, (1 + man / 8) * 2.0 ** (exp - 7.0))
    value = np.where((exp == 0xF) & (man == 0x7), np.nan, value)
    return (sign * value).astype(np.float32)


def _error(where: str, problem: str) -> AttrWidgetsError:
    return AttrWidgetsError(f"Cannot read {where}: {problem}. Save it again with Inseq's "
                            "FeatureAttributionOutput.save(), or copy the file again if it was cut off.")


def _b64(where: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _error(where, "the tensor is not valid base64 text") from None


def safetensor_bytes(array: np.ndarray) -> bytes:
    """A float32 array as a one-tensor safetensors blob, laid out as safetensors.torch.save writes it (header
    padded with spaces to 8 bytes), so Inseq's loader reads it."""
    arr = np.ascontiguousarray(array, dtype="<f4")
    entry = {TENSOR_KEY: {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [0, arr.nbytes]}}
    header = json.dumps(entry, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + arr.tobytes()


def array_from_safetensor(where: str, blob: bytes) -> np.ndarray:
    """The "attribution" tensor of a safetensors blob, as float32."""
    if len(blob) < 8:
        raise _error(where, f"a tensor holds {len(blob)} bytes, too few for a safetensors header")
    size = int.from_bytes(blob[:8], "little")
    if not 2 <= size <= min(MAX_HEADER, len(blob) - 8):
        raise _error(where, f"a tensor's safetensors header claims {size} bytes, but {len(blob) - 8} follow")
    try:
        header = json.loads(blob[8 : 8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _error(where, "a tensor's safetensors header is not JSON") from None
    if not isinstance(header, dict):
        raise _error(where, "a tensor's safetensors header is not a JSON object")
    names = [k for k in header if k != "__metadata__"]
    if names != [TENSOR_KEY] or not isinstance(header[TENSOR_KEY], dict):
        raise _error(where, f"a tensor blob holds {names}, expected the single tensor {TENSOR_KEY!r}")
    entry, body = header[TENSOR_KEY], blob[8 + size :]
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _ITEMSIZE:
        raise _error(where, f"a tensor has dtype {dtype!r}; attrwidgets reads {sorted(_ITEMSIZE)}")
    if not _int_list(shape) or not _int_list(offsets) or len(offsets) != 2:
        raise _error(where, "a tensor's shape or data_offsets are not lists of non-negative integers")
    start, end = offsets
    if not start <= end <= len(body) or end - start != math.prod(shape) * _ITEMSIZE[dtype]:
        raise _error(where, f"a tensor of shape {shape} and dtype {dtype} does not fit its {len(body)} data bytes "
                            f"(offsets {offsets})")
    raw = body[start:end]
    if dtype == "BF16":  # bfloat16 is the top half of a float32
        values = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    elif dtype == "F8_E4M3":
        values = _float8_e4m3fn_table()[np.frombuffer(raw, np.uint8)]
    else:
        values = np.frombuffer(raw, _NUMPY_DTYPES[dtype])
    return values.astype(np.float32).reshape(shape)


def _int_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)


def array_from_block(where: str, block: dict) -> np.ndarray:
    """An old-layout numpy block {"__ndarray__", "dtype", "shape"[, "Corder"]} as float32."""
    data, dtype, shape = block.get("__ndarray__"), block.get("dtype"), block.get("shape")
    if dtype not in _BLOCK_DTYPES:
        raise _error(where, f"an array block has dtype {dtype!r}; attrwidgets reads {sorted(_BLOCK_DTYPES)}")
    if not _int_list(shape):
        raise _error(where, f"an array block's shape {shape!r} is not a list of non-negative integers")
    if block.get("Corder", True) is not True:
        # Inseq itself never wrote Fortran order for the compact form, and nested lists carry their own order
        raise _error(where, "an array block is in Fortran order, which Inseq's format does not use")
    if isinstance(data, list):
        return nested_lists(where, data, tuple(shape))
    if not isinstance(data, str) or not data.startswith(("b64:", "b64.gz:")):
        raise _error(where, "an array block's data is neither nested lists nor 'b64:'/'b64.gz:' text")
    head, _, text = data.partition(":")
    raw = _b64(where, text)
    if head == "b64.gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            raise _error(where, "an array block's gzipped data is damaged") from None
    itemsize = np.dtype(dtype).itemsize
    if len(raw) != math.prod(shape) * itemsize:
        raise _error(where, f"an array block of shape {shape} ({dtype}) holds {len(raw)} bytes, expected "
                            f"{math.prod(shape) * itemsize}")
    return np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).astype(np.float32).reshape(shape)


def nested_lists(where: str, data: list, shape: tuple | None = None) -> np.ndarray:
    """Nested lists of numbers (NaN allowed: Inseq saves with allow_nan) as a float32 array."""
    try:
        arr = np.array(data, dtype=np.float64)
    except (ValueError, TypeError):
        raise _error(where, "an array written as lists is ragged or holds something other than numbers") from None
    if shape is not None and arr.shape != shape:
        raise _error(where, f"an array written as lists has shape {arr.shape}, its block says {shape}")
    return arr.astype(np.float32)


def decode_tensor(where: str, value) -> np.ndarray | None:
    """Any of Inseq's tensor encodings as a float32 array: base64 safetensors (0.7), a numpy block (0.6 and
    earlier), or plain lists (use_primitives). None stays None (a tensor Inseq did not compute)."""
    if value is None:
        return None
    if isinstance(value, str):
        return array_from_safetensor(where, _b64(where, value))
    if isinstance(value, dict) and "__ndarray__" in value:
        return array_from_block(where, value)
    if isinstance(value, list):
        return nested_lists(where, value)
    raise _error(where, f"a tensor is a {type(value).__name__}, not base64 safetensors, an array block or lists")
