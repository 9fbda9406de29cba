"""Persistence and export of Attribution results: attrwidgets JSON, TokenLens JSON, long-format table/CSV.

JSON only, never pickle: a result file is something people e-mail around, and unpickling runs arbitrary
code. NaN means "not computed" (a lazily filled row) and is written as null, since JSON has no NaN;
inf is always a bug upstream (NonFiniteGradientError territory), so it is refused rather than hidden.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from attrwidgets.core.files import csv_cell, file_reader, open_text_atomic, write_text_atomic
from attrwidgets.core.result import Attribution
from attrwidgets.core.tokens import SEGMENTS, Token
from attrwidgets.errors import AttrWidgetsError

SCHEMA = "attrwidgets.attribution/1"
_SCHEMA_PREFIX = "attrwidgets.attribution/"
_RESAVE = "Re-save it with Attribution.save()"
_PER_TARGET = ("target_prob", "target_entropy", "completeness_error")
# Optional arrays and how their shape must match (n_targets, n_positions); None = any size.
_OPTIONAL_SHAPES = {"per_dim": ("t", "p", None), "attention": ("t", None, None, "p"), "signed_scores": ("t", "p")}
_TOKENLENS_META = ("timestamp", "llm_id", "prompt", "attribution_method")
_TOKENLENS_SPECIALS = {"<s>", "</s>", "<unk>", "<pad>", "<bos>", "<eos>", "[CLS]", "[SEP]", "[PAD]", "[MASK]"}
# the long table of to_dataframe/to_csv; token columns hold the clean text
DATAFRAME_COLUMNS = (
    "target_index", "target_position", "target_token", "source_position", "source_token", "source_segment",
    "score",
)  # fmt: skip


def _error(where: str, problem: str, fix: str = _RESAVE) -> AttrWidgetsError:
    return AttrWidgetsError(f"Cannot read {where}: {problem}. {fix}.")


# -- arrays <-> JSON lists --------------------------------------------------------------------------
def _array_to_json(name: str, value) -> list | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64)
    inf = np.isinf(arr)
    if inf.any():
        where = tuple(int(i) for i in np.argwhere(inf)[0])
        raise AttrWidgetsError(
            f"{name} holds inf at index {where}: inf is a numerical bug, not a value to save (NaN marks "
            "'not computed'). Recompute with a smaller step size or float32, or set it to NaN before saving."
        )
    return np.where(np.isnan(arr), None, arr).tolist()


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


def _unwrap_numpy(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


# -- attrwidgets schema ---------------------------------------------------------------------------
def attribution_to_dict(a: Attribution) -> dict:
    """JSON-able dict of every field; arrays as nested lists with null for NaN (not computed)."""
    d = {
        "schema": SCHEMA,
        "method": a.method,
        "model_id": a.model_id,
        "timestamp": a.timestamp,
        "prompt": a.prompt,
        "options": a.options,
        "tokens": [t.to_dict() for t in a.tokens],
        "target_positions": [int(p) for p in a.target_positions],
        "scores": _array_to_json("scores", a.scores),
    }
    for name in (*_PER_TARGET, *_OPTIONAL_SHAPES):
        d[name] = _array_to_json(name, getattr(a, name))
    try:
        # fail at save time, not at load time, if options hold something JSON cannot carry; numpy
        # scalars (n_steps as np.int64) are plain values in disguise and are unwrapped
        d["options"] = json.loads(json.dumps(a.options, allow_nan=False, default=_unwrap_numpy))
    except (TypeError, ValueError) as exc:
        raise AttrWidgetsError(
            f"options are not JSON-able ({exc}): options must hold only str/int/float/bool/None, lists and "
            "dicts of them. Convert tensors or objects in Attribution.options to plain values before saving."
        ) from None
    return d


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
    for name in _PER_TARGET:
        if d.get(name) is not None:
            arrays[name] = _array_from_json(where, name, d[name], (n_t,))
    for name, dims in _OPTIONAL_SHAPES.items():
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


def save_result(a: Attribution, path) -> None:
    """Write `a` as attrwidgets JSON (schema 'attrwidgets.attribution/1'); load with load_result."""
    write_text_atomic(path, json.dumps(attribution_to_dict(a), ensure_ascii=False, allow_nan=False))


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


# -- TokenLens (upstream seed 004) ----------------------------------------------------------------
def normalize_rows(m: np.ndarray) -> np.ndarray:
    """Divide each row by its largest |value|: zeros stay 0, signs are kept, NaN (not computed) stays NaN.

    Upstream's min-max normalisation mapped zero entries to negative numbers and replaced NaNs with random
    numbers; both made the heatmap lie. A row with no nonzero finite value is returned unchanged.
    """
    m = np.asarray(m, dtype=np.float64)
    # initial=0: an all-NaN row gets peak 0 (kept as is) instead of a RuntimeWarning
    peak = np.nanmax(np.abs(m), axis=1, keepdims=True, initial=0.0)
    return np.where(peak > 0, m / np.where(peak > 0, peak, 1.0), m)


def _tokenlens_token(t: Token) -> dict:
    # token/token_id/clean_token is the TokenLens UI's record; segment/special are extra keys it ignores,
    # kept so that from_tokenlens(to_tokenlens(a)) restores them
    return {
        "token": t.text,
        "token_id": t.id,
        "clean_token": t.clean,
        "segment": t.segment,
        "special": t.special,
    }


def to_tokenlens(a: Attribution) -> dict:
    """TokenLens UI JSON. Inputs = positions before the first target; outputs = one per target row.

    association_matrix is (n_output, n_input), rows outputs. TokenLens has no output->output block, so
    attributions from earlier generated tokens (and any non-target position after the first target) are
    not exported; use Attribution.save() for a lossless file. Rows not computed are null.
    """
    n_in = min(a.target_positions) if a.target_positions else a.n_positions
    assoc = a.scores[:, :n_in]
    return {
        "metadata": {
            "timestamp": a.timestamp,
            "llm_id": a.model_id,
            "prompt": a.prompt,
            "attribution_method": a.method,
            "generation_params": {"max_new_tokens": a.n_targets},
            "method_options": a.options,  # extra key: the UI ignores it, from_tokenlens restores it
        },
        "data": {
            "input_tokens": [_tokenlens_token(t) for t in a.tokens[:n_in]],
            "output_tokens": [_tokenlens_token(t) for t in a.targets],
            "association_matrix": _array_to_json("association_matrix", assoc),
            "normalized_association": _array_to_json("normalized_association", normalize_rows(assoc)),
        },
    }


def save_tokenlens(a: Attribution, path) -> None:
    """Write to_tokenlens(a) as JSON (drop it in TokenLens's ui/src/data/)."""
    write_text_atomic(path, json.dumps(to_tokenlens(a), ensure_ascii=False, allow_nan=False))


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


# -- long-format table ----------------------------------------------------------------------------
def _table(a: Attribution) -> dict[str, np.ndarray]:
    """The columns of the long table: one entry per computed (target, source) pair, sources p < target.

    Keyed by position, so repeated tokens never collide; rows not computed (all NaN) are left out. After
    aggregate_words a target's own word holds the earlier pieces of that word, so there the target's own
    column (p == target position) is included too.
    """
    own = 1 if a.options.get("aggregated") == "words" else 0
    rows = np.flatnonzero(a.computed_rows).tolist()
    counts = [a.target_positions[i] + own for i in rows]
    ti = np.repeat(np.asarray(rows, dtype=np.int64), counts)
    sp = np.concatenate([np.arange(c, dtype=np.int64) for c in counts]) if rows else ti.copy()
    tpos = np.asarray(a.target_positions, dtype=np.int64)[ti]
    clean = np.asarray([t.clean for t in a.tokens], dtype=object)
    segment = np.asarray([t.segment for t in a.tokens], dtype=object)
    columns = (ti, tpos, clean[tpos], sp, clean[sp], segment[sp], a.scores[ti, sp])
    return dict(zip(DATAFRAME_COLUMNS, columns))


def to_dataframe(a: Attribution):
    """Long-format pandas DataFrame with columns DATAFRAME_COLUMNS (see _table for which pairs)."""
    try:
        import pandas as pd
    except ImportError:
        raise AttrWidgetsError("to_dataframe needs pandas: pip install pandas (to_csv does not).") from None
    return pd.DataFrame(_table(a), columns=list(DATAFRAME_COLUMNS))


def to_csv(a: Attribution, path, *, raw: bool = False) -> Path:
    """The to_dataframe table as UTF-8 CSV, written with the csv module so pandas is not needed.

    Every text field is quoted (token text may hold commas, quotes, newlines or leading spaces); a score
    that is NaN is an empty field; scores use the shortest text that reads back to the same float32. Token
    text that a spreadsheet would run as a formula (starting with = + - @, tab or CR) gets a leading
    apostrophe unless raw=True (files.csv_cell). Written atomically.
    """
    table = _table(a)
    with open_text_atomic(path) as f:
        w = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)
        w.writerow(DATAFRAME_COLUMNS)
        for *head, score in zip(*(table[c].tolist() for c in DATAFRAME_COLUMNS)):
            head = [csv_cell(v, raw) if isinstance(v, str) else v for v in head]
            w.writerow([*head, None if math.isnan(score) else float(str(np.float32(score)))])
    return Path(path)
