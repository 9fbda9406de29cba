"""Save/load for results with large tensors: a JSON header (schema-checked) plus a safetensors file beside it.

`x.json` holds the schema name, metadata and the tokens; `x.safetensors` holds the arrays. Never pickle: a
result file is something people pass around, and unpickling runs arbitrary code. Every problem with a file
is an AttrWidgetsError that names the file, what is wrong and what to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from attrwidgets.core.files import write_bytes_atomic
from attrwidgets.core.tokens import SEGMENTS, Token
from attrwidgets.errors import AttrWidgetsError

_RESAVE = "Re-save it with the result's save() method"


def bundle_paths(path) -> tuple[Path, Path]:
    """'out' or 'out.json' -> (out.json, out.safetensors)."""
    path = Path(path)
    header = path if path.suffix == ".json" else path.with_name(path.name + ".json")
    return header, header.with_suffix(".safetensors")


def schema_version(schema: str) -> int:
    """The version a schema name carries ('attrwidgets.attribution/1' -> 1); a name without one is version 1."""
    name, _, version = schema.rpartition("/")
    return int(version) if name and version.isdigit() else 1


def json_array(name: str, value) -> list | None:
    """An array as nested lists for JSON: integers as they are, NaN (not computed) as null. inf is refused: it
    is a numerical bug, not a value to pass on."""
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype.kind in "iub":
        return arr.tolist()
    arr = arr.astype(np.float64)
    inf = np.isinf(arr)
    if inf.any():
        where = tuple(int(i) for i in np.argwhere(inf)[0])
        raise AttrWidgetsError(
            f"{name} holds inf at index {where}: inf is a numerical bug, not a value to save (NaN marks "
            "'not computed'). Recompute with a smaller step size or float32, or set it to NaN before saving."
        )
    return np.where(np.isnan(arr), None, arr).tolist()


def bundle_dict(schema: str, header: dict, arrays: dict[str, np.ndarray | None]) -> dict:
    """What save_bundle writes, as one JSON-able dict: the result's to_dict() (arrays as nested lists)."""
    return {"schema": schema, "version": schema_version(schema), **header,
            **{name: json_array(name, value) for name, value in arrays.items()}}


def save_bundle(path, schema: str, header: dict, arrays: dict[str, np.ndarray | None]) -> Path:
    """Write header (JSON-able) and arrays (None entries skipped); returns the JSON path."""
    from safetensors.numpy import save

    json_path, tensor_path = bundle_paths(path)
    tensors = {k: np.ascontiguousarray(v) for k, v in arrays.items() if v is not None}
    try:
        text = json.dumps({"schema": schema, "version": schema_version(schema), **header, "tensors": sorted(tensors)},
                          allow_nan=False, indent=1)
    except (TypeError, ValueError) as exc:
        raise AttrWidgetsError(f"Cannot save: the header is not JSON-able ({exc}).") from None
    write_bytes_atomic(tensor_path, save(tensors))
    write_bytes_atomic(json_path, text.encode("utf-8"))
    return json_path


def read_json_file(path, fix: str) -> object:
    """The parsed content of a JSON file; a missing or unparsable file is an AttrWidgetsError ending in `fix`."""
    where = str(path)
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AttrWidgetsError(f"Cannot read {where}: no such file.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AttrWidgetsError(f"Cannot read {where}: not valid JSON ({exc}). {fix}.") from None


def load_bundle(path, schema: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a bundle written by save_bundle with this schema -> (header, arrays)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    json_path, tensor_path = bundle_paths(path)
    where = str(json_path)
    if not json_path.is_file():
        raise AttrWidgetsError(f"Cannot read {where}: no such file. Pass the path given to save().")
    try:
        header = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AttrWidgetsError(f"Cannot read {where}: not valid JSON ({exc}). {_RESAVE}.") from None
    if not isinstance(header, dict) or header.get("schema") != schema:
        got = header.get("schema") if isinstance(header, dict) else type(header).__name__
        raise AttrWidgetsError(f"Cannot read {where}: schema is {got!r}, expected {schema!r}. {_RESAVE}.")
    if not tensor_path.is_file():
        raise AttrWidgetsError(
            f"Cannot read {where}: its tensors file {tensor_path.name} is missing; keep the two files together."
        )
    try:
        arrays = load(tensor_path.read_bytes())
    except (SafetensorError, ValueError, OSError) as exc:
        raise AttrWidgetsError(f"Cannot read {tensor_path}: not a valid safetensors file ({exc}). {_RESAVE}.") from None
    missing = [k for k in header.get("tensors", []) if k not in arrays]
    if missing:
        raise AttrWidgetsError(f"Cannot read {tensor_path}: tensors {missing} are missing. {_RESAVE}.")
    return header, arrays


def require(header: dict, where: str, key: str, kind: type | tuple):
    if key not in header:
        raise AttrWidgetsError(f"Cannot read {where}: key {key!r} missing. {_RESAVE}.")
    value = header[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise AttrWidgetsError(f"Cannot read {where}: {key!r} must be {name}, got {type(value).__name__}. {_RESAVE}.")
    return value


def require_array(arrays: dict, where: str, name: str, shape: tuple) -> np.ndarray:
    """Array `name` with `shape` (None = any size on that axis), as float32."""
    if name not in arrays:
        raise AttrWidgetsError(f"Cannot read {where}: tensor {name!r} missing. {_RESAVE}.")
    value = arrays[name]
    if value.ndim != len(shape) or any(s is not None and s != g for s, g in zip(shape, value.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise AttrWidgetsError(f"Cannot read {where}: tensor {name!r} has shape {value.shape}, expected {want}.")
    return value.astype(np.float32)


def tokens_from_header(header: dict, where: str) -> list[Token]:
    raw = require(header, where, "tokens", list)
    out = []
    for i, t in enumerate(raw):
        ok = isinstance(t, dict) and all(k in t for k in ("id", "text", "clean", "segment", "special"))
        if not ok or t["segment"] not in SEGMENTS:
            raise AttrWidgetsError(f"Cannot read {where}: tokens[{i}] is malformed ({t!r:.80}). {_RESAVE}.")
        out.append(Token.from_dict(t))
    return out
