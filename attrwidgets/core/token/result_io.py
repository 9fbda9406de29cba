"""Reading Attribution results: attrwidgets JSON and TokenLens JSON (core/token/result_write.py writes them, and
the long-format table / CSV).

JSON only, never pickle: a result file is something people e-mail around, and unpickling runs arbitrary
code. NaN means "not computed" (a lazily filled row) and is written as null, since JSON has no NaN;
inf is always a bug upstream (NonFiniteGradientError territory), so it is refused rather than hidden.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from attrwidgets.core.files import file_reader
from attrwidgets.core.token.result import Attribution
from attrwidgets.core.token.result_write import (  # noqa: F401 - the writers, reachable here as before
    DATAFRAME_COLUMNS,
    OPTIONAL_SHAPES,
    PER_TARGET,
    SCHEMA,
    attribution_to_dict,
    normalize_rows,
    save_result,
    save_tokenlens,
    to_csv,
    to_dataframe,
    to_tokenlens,
)
from attrwidgets.core.tokens import SEGMENTS, Token
from attrwidgets.errors import AttrWidgetsError

_SCHEMA_PREFIX = "attrwidgets.attribution/"
_RESAVE = "Re-save it with Attribution.save()"
_TOKENLENS_META = ("timestamp", "llm_id", "prompt", "attribution_method")
_TOKENLENS_SPECIALS = {"<s>", "</s>", "<unk>", "<pad>", "<bos>", "<eos>", "[CLS]", "[SEP]", "[PAD]", "[MASK]"}


def _error(where: str, problem: str, fix: str = _RESAVE) -> AttrWidgetsError:
    return AttrWidgetsError(f"Cannot read {where}: {problem}. {fix}.")


def _array_from_json(where: str, name: str, value, shape: tuple) -> np.ndarray:
    """Nested lists (null = NaN) -> float32 array of `shape`; None entries in `shape` match any size."""
    if not isinstance(value, list):
        raise _error(where, f"'{name}' must be a nested list of numbers, got {type(value).__name__}")
    try:
        obj = np.array(value, dtype=object)
    except ValueError:
        obj = None
    if obj is None or obj.ndim != len(shape) or any(isinstance(v, (list, dict)) for v in obj.flat):
        if not value and 0 in [s for s in shape if s is not None]:
            # an empty list cannot carry its trailing dimensions: (0, n) is written as []
            return np.zeros([s or 0 for s in shape], dtype=np.float32)
        problem = f"'{name}' must be a {len(shape)}-d array (ragged or wrongly nested lists found)"
        raise _error(where, problem)
    got = obj.shape
    if any(s is not None and s != g for s, g in zip(shape, got)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise _error(where, f"'{name}' has shape {got}, expected {want}")
    for v in obj.flat:
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise _error(where, f"'{name}' holds {v!r}; only numbers and null are allowed")
    arr = np.array(obj.tolist(), dtype=np.float64).reshape(got)  # None -> NaN here
    if np.isinf(arr).any():
        raise _error(where, f"'{name}' holds an infinite value", "Replace it by null (not computed)")
    return arr.astype(np.float32)


def _token_from_dict(where: str, i: int, t) -> Token:
    if not isinstance(t, dict):
        raise _error(where, f"tokens[{i}] must be an object, got {type(t).__name__}")
    for key, kind in (("id", int), ("text", str), ("clean", str), ("segment", str), ("special", bool)):
        if key not in t:
            raise _error(where, f"key '{key}' missing in tokens[{i}]")
        if not isinstance(t[key], kind) or (kind is int and isinstance(t[key], bool)):
            raise _error(where, f"tokens[{i}].{key} must be {kind.__name__}, got {type(t[key]).__name__}")
    if t["segment"] not in SEGMENTS:
        raise _error(where, f"tokens[{i}].segment is {t['segment']!r}, expected one of {SEGMENTS}")
    return Token.from_dict(t)


def _from_dict(d, where: str) -> Attribution:
    if not isinstance(d, dict):
        raise _error(where, f"top level must be a JSON object, got {type(d).__name__}")
    schema = d.get("schema")
    if schema is None:
        raise _error(where, "key 'schema' missing: not an attrwidgets attribution file", _RESAVE)
    if schema != SCHEMA:
        fix = (
            "It was written by a newer attrwidgets: upgrade attrwidgets"
            if isinstance(schema, str) and schema.startswith(_SCHEMA_PREFIX)
            else _RESAVE
        )
        raise _error(where, f"schema is {schema!r}, expected {SCHEMA!r}", fix)
    for key in ("method", "tokens", "target_positions", "scores"):
        if key not in d:
            raise _error(where, f"key '{key}' missing")
    for key in ("method", "model_id", "timestamp", "prompt"):
        if key in d and not isinstance(d[key], str):
            raise _error(where, f"'{key}' must be a string, got {type(d[key]).__name__}")
    options = d.get("options") or {}
    if not isinstance(options, dict):
        raise _error(where, f"'options' must be an object, got {type(options).__name__}")
    if not isinstance(d["tokens"], list):
        raise _error(where, f"'tokens' must be a list, got {type(d['tokens']).__name__}")
    tokens = [_token_from_dict(where, i, t) for i, t in enumerate(d["tokens"])]
    n_p = len(tokens)
    pos = d["target_positions"]
    if not isinstance(pos, list) or any(isinstance(p, bool) or not isinstance(p, int) for p in pos):
        raise _error(where, "'target_positions' must be a list of integers")
    bad = [p for p in pos if not 0 <= p < n_p]
    if bad:
        raise _error(where, f"target_positions {bad} out of range for {n_p} tokens (valid: 0..{n_p - 1})")
    n_t = len(pos)
    size = {"t": n_t, "p": n_p}
    arrays = {"scores": _array_from_json(where, "scores", d["scores"], (n_t, n_p))}
    for name in PER_TARGET:
        if d.get(name) is not None:
            arrays[name] = _array_from_json(where, name, d[name], (n_t,))
    for name, dims in OPTIONAL_SHAPES.items():
        if d.get(name) is not None:
            arrays[name] = _array_from_json(where, name, d[name], tuple(size.get(s) for s in dims))
    meta = {k: d[k] for k in ("model_id", "timestamp", "prompt") if k in d}
    meta.setdefault("timestamp", "")  # unknown, not "now": a loaded result was not computed now
    try:
        return Attribution(
            tokens=tokens, target_positions=list(pos), method=d["method"], options=options, **meta, **arrays
        )
    except AttrWidgetsError as exc:
        raise _error(where, str(exc).rstrip(".")) from None


def attribution_from_dict(d: dict) -> Attribution:
    """Inverse of attribution_to_dict; schema-checked (AttrWidgetsError names the problem)."""
    return _from_dict(d, "attribution dict")


def _reject_infinity(constant: str) -> float:
    # Python's json accepts the non-standard NaN/Infinity literals; NaN still means "not computed"
    if constant == "NaN":
        return math.nan
    raise ValueError(constant)


@file_reader('a saved Attribution (attrwidgets or TokenLens JSON)',
             'Pass a file written by Attribution.save() or TokenLens, or re-save it')
def load_result(path) -> Attribution:
    """Read an attrwidgets JSON file, or a TokenLens JSON file (auto-detected by metadata+data keys)."""
    path = Path(path)
    where = f"attribution file '{path}'"
    raw = path.read_bytes()
    if raw.startswith((b"\x80", b"PK\x03\x04")):
        raise _error(
            where,
            "it is a pickle or torch.save archive, not JSON; attrwidgets never unpickles "
            "files (unpickling can run arbitrary code)",
            "Load it in the program that wrote it and save it with Attribution.save(), which writes JSON",
        )
    if not raw.strip():
        raise _error(where, "the file is empty (truncated)", f"{_RESAVE}, or copy the file again")
    try:
        text = raw.decode("utf-8-sig")  # -sig: tolerate the BOM some Windows editors add
        d = json.loads(text, parse_constant=_reject_infinity)
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text (bad byte at offset {exc.start}), so not a JSON result file"
        raise _error(where, problem, f"{_RESAVE}, or check you picked the right file") from None
    except json.JSONDecodeError as exc:
        problem = f"truncated or not JSON at line {exc.lineno} column {exc.colno} ({exc.msg})"
        raise _error(where, problem, f"{_RESAVE}, or copy the file again if it was cut off") from None
    except ValueError as exc:
        raise _error(
            where, f"it holds the non-finite number {exc}", "Use null (not computed) instead"
        ) from None
    if isinstance(d, dict) and "schema" not in d and "metadata" in d and "data" in d:
        return _from_tokenlens(d, f"TokenLens file '{path}'")
    return _from_dict(d, where)


def _token_from_tokenlens(where: str, key: str, i: int, t, segment: str, fix: str) -> Token:
    if isinstance(t, str):
        t = {"token": t}
    if not isinstance(t, dict) or not isinstance(t.get("token"), str):
        raise _error(where, f"data.{key}[{i}] must be a string or an object with a string 'token'", fix)
    text = t["token"]
    tid = t.get("token_id")
    clean = t.get("clean_token")
    if not isinstance(clean, str):
        clean = text.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\n")
    seg = t.get("segment") if t.get("segment") in SEGMENTS else segment
    special = t.get("special")
    if not isinstance(special, bool):  # upstream files carry no flag: recognise the usual markers
        special = (text.startswith("<|") and text.endswith("|>")) or text in _TOKENLENS_SPECIALS
    return Token(tid if isinstance(tid, int) and not isinstance(tid, bool) else -1, text, clean, seg, special)


def _from_tokenlens(d, where: str) -> Attribution:
    fix = "Check the file follows the TokenLens format (metadata{...}, data{input_tokens, output_tokens, "
    fix += "association_matrix, normalized_association})"
    if not isinstance(d, dict) or not all(isinstance(d.get(k), dict) for k in ("metadata", "data")):
        raise _error(where, "'metadata' and 'data' must both be objects", fix)
    meta, data = d["metadata"], d["data"]
    for key in ("input_tokens", "output_tokens", "association_matrix"):
        if key not in data:
            raise _error(where, f"key 'data.{key}' missing", fix)
        if not isinstance(data[key], list):
            raise _error(where, f"'data.{key}' must be a list", fix)
    inputs, outputs = (
        [_token_from_tokenlens(where, key, i, t, seg, fix) for i, t in enumerate(data[key])]
        for key, seg in (("input_tokens", "prompt"), ("output_tokens", "generated"))
    )
    n_in, n_out = len(inputs), len(outputs)
    assoc = _array_from_json(where, "data.association_matrix", data["association_matrix"], (n_out, n_in))
    # outputs follow the inputs; the output->output block is unknown to TokenLens and left 0 (causal),
    # while a row that was not computed (all null) stays NaN throughout
    scores = np.zeros((n_out, n_in + n_out), dtype=np.float32)
    scores[:, :n_in] = assoc
    scores[np.isnan(assoc).all(axis=1) & (n_in > 0)] = np.nan
    options = meta.get("method_options")
    if not isinstance(options, dict):
        gp = meta.get("generation_params")
        options = {"generation_params": gp} if isinstance(gp, dict) and gp else {}

    text = {k: meta[k] if isinstance(meta.get(k), str) else "" for k in _TOKENLENS_META}
    return Attribution(
        tokens=inputs + outputs, target_positions=list(range(n_in, n_in + n_out)), scores=scores,
        method=text["attribution_method"] or "unknown", options=options, model_id=text["llm_id"],
        timestamp=text["timestamp"], prompt=text["prompt"],
    )  # fmt: skip


def from_tokenlens(d: dict) -> Attribution:
    """Attribution from a TokenLens dict: prompt tokens, then one generated token per association row."""
    return _from_tokenlens(d, "TokenLens dict")
