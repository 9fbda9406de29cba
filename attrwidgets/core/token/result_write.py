"""Writing Attribution results: attrwidgets JSON, TokenLens JSON, the long-format table and CSV
(core/token/result_io.py reads the JSON back). Writers read the result's attributes only, so result.py calls them
without an import cycle.

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

from attrwidgets.core.bundle_io import json_array, schema_version
from attrwidgets.core.files import csv_cell, open_text_atomic, write_text_atomic
from attrwidgets.errors import AttrWidgetsError

SCHEMA = "attrwidgets.attribution/1"
PER_TARGET = ("target_prob", "target_entropy", "completeness_error")
# Optional arrays and how their shape must match (n_targets, n_positions); None = any size.
OPTIONAL_SHAPES = {"per_dim": ("t", "p", None), "attention": ("t", None, None, "p"), "signed_scores": ("t", "p")}
# the long table of to_dataframe/to_csv; token columns hold the clean text
DATAFRAME_COLUMNS = (
    "target_index", "target_position", "target_token", "source_position", "source_token", "source_segment",
    "score",
)  # fmt: skip


def _unwrap_numpy(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


# -- arrays <-> JSON lists --------------------------------------------------------------------------
def _array_to_json(name: str, value) -> list | None:
    return json_array(name, None if value is None else np.asarray(value, dtype=np.float64))


def attribution_to_dict(a) -> dict:
    """JSON-able dict of every field; arrays as nested lists with null for NaN (not computed)."""
    d = {
        "schema": SCHEMA,
        "version": schema_version(SCHEMA),
        "method": a.method,
        "model_id": a.model_id,
        "timestamp": a.timestamp,
        "prompt": a.prompt,
        "options": a.options,
        "tokens": [t.to_dict() for t in a.tokens],
        "target_positions": [int(p) for p in a.target_positions],
        "scores": _array_to_json("scores", a.scores),
    }
    for name in (*PER_TARGET, *OPTIONAL_SHAPES):
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


def save_result(a, path) -> Path:
    """Write `a` as attrwidgets JSON (schema 'attrwidgets.attribution/1'); load with load_result. Returns the path."""
    return write_text_atomic(path, json.dumps(attribution_to_dict(a), ensure_ascii=False, allow_nan=False))


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


def _tokenlens_token(t) -> dict:
    # token/token_id/clean_token is the TokenLens UI's record; segment/special are extra keys it ignores,
    # kept so that from_tokenlens(to_tokenlens(a)) restores them
    return {
        "token": t.text,
        "token_id": t.id,
        "clean_token": t.clean,
        "segment": t.segment,
        "special": t.special,
    }


def to_tokenlens(a) -> dict:
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


def save_tokenlens(a, path) -> Path:
    """Write to_tokenlens(a) as JSON (drop it in TokenLens's ui/src/data/); returns the path."""
    return write_text_atomic(path, json.dumps(to_tokenlens(a), ensure_ascii=False, allow_nan=False))


# -- long-format table ----------------------------------------------------------------------------
def _table(a) -> dict[str, np.ndarray]:
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


def to_dataframe(a):
    """Long-format pandas DataFrame with columns DATAFRAME_COLUMNS (see _table for which pairs)."""
    try:
        import pandas as pd
    except ImportError:
        raise AttrWidgetsError("to_dataframe needs pandas: pip install pandas (to_csv does not).") from None
    return pd.DataFrame(_table(a), columns=list(DATAFRAME_COLUMNS))


def to_csv(a, path, *, raw: bool = False) -> Path:
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
