"""Reading LayerAttribution files: the upstream LIG JSON layout and our own bundle (core/lig/lig_write.py
writes both).

Upstream layout (layer-wise-integrated-gradients 0.1.0, `lig.explain`): text, tokens, model, model_type,
config{num_steps, granularity, baseline_*, layers, target_tokens, target_head, include_residual_connection},
boundaries, layers{"l": {layer_idx, z2z{baseline, description, shape, matrix, token_to_token},
targets{"j": {target_token_idx, target_token, z2u{baseline, description, heads{"h": {contributions,
token_l2_norm}}}, u2z{baseline, description, contributions, l2_total, completeness{error, ...}}}}}}.
Its matrix is matrix[i][j] = source i -> target j, the transpose of ours. Columns we did not compute are
written as null. We add a "completeness" key beside each z2z and z2u entry (relative errors); readers of
the upstream layout ignore unknown keys.
"""

from __future__ import annotations

import numpy as np

from attrwidgets.core.bundle_io import load_bundle, read_json_file, require, require_array, tokens_from_header
from attrwidgets.core.files import file_reader
from attrwidgets.core.lig.baselines import OPTION_OF_ROUTE, ROUTES
from attrwidgets.core.lig.lig_write import LIG_SCHEMA
from attrwidgets.core.lig.result import LayerAttribution, RouteColumns
from attrwidgets.core.tokens import Token
from attrwidgets.errors import AttrWidgetsError


# -- reading the upstream layout ------------------------------------------------------------------------
def _bad(where: str, what: str) -> AttrWidgetsError:
    return AttrWidgetsError(f"Cannot read {where} as LIG JSON: {what}. Expected the layout `lig.explain` or "
                            "LayerAttribution.to_lig_json writes.")


def _field(obj, key, kind, where, context):
    if not isinstance(obj, dict) or key not in obj:
        raise _bad(where, f"{context} lacks {key!r}")
    value = obj[key]
    if not isinstance(value, kind):
        raise _bad(where, f"{context}[{key!r}] is {type(value).__name__}")
    return value


def _floats(values, n, where, context) -> np.ndarray:
    try:
        arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise _bad(where, f"{context} holds non-numbers") from None
    if arr.shape != (n,):
        raise _bad(where, f"{context} has {arr.size} values for {n} tokens")
    if np.any(np.abs(arr[np.isfinite(arr)]) > np.finfo(np.float32).max):
        raise _bad(where, f"{context} holds a value beyond float32's range")  # would be stored as inf
    return arr


@file_reader("the LIG package's JSON", 'Pass a file written by LayerAttribution.to_lig_json() or the LIG package')
def load_lig_json(path) -> LayerAttribution:
    """Read a LIG JSON (upstream `lig.explain` output or ours) into a LayerAttribution (no model needed)."""
    where = str(path)
    data = read_json_file(path, "Pass a file that `lig.explain` or LayerAttribution.to_lig_json wrote")
    texts = _field(data, "tokens", list, where, "the file")
    if not texts or not all(isinstance(t, str) for t in texts):
        raise _bad(where, "'tokens' must be a non-empty list of strings")
    config = _field(data, "config", dict, where, "the file")
    layers = _field(data, "layers", dict, where, "the file")
    n = len(texts)
    n_heads, hidden = 0, 0
    for entry in layers.values():  # sizes come from the data: the file names no model dimensions
        for target in (entry.get("targets") or {}).values() if isinstance(entry, dict) else []:
            heads = (target.get("z2u") or {}).get("heads") or {}
            n_heads = max([n_heads] + [int(h) + 1 for h in heads if str(h).isdigit()])
            hidden = max(hidden, len((target.get("u2z") or {}).get("contributions") or []))
    options = {
        "n_steps": config.get("num_steps"), "quadrature": config.get("quadrature", "riemann_trapezoid"),
        "baseline_layer": config.get("baseline_layer", "self_input_token"),
        "baseline_att": config.get("baseline_att", "self_input_token"),
        "baseline_mlp": config.get("baseline_mlp", "zero"), "target_head": config.get("target_head"),
        "include_residual_connection": config.get("include_residual_connection", True),
        "target_tokens": config.get("target_tokens") or list(range(n)),
        "routes": [r for r in ROUTES if r in (config.get("granularity") or ROUTES)],
    }
    _check_config(options, n, where)
    tokens = [Token(-1, t, t, "prompt", t.startswith("[") and t.endswith("]")) for t in texts]
    result = LayerAttribution(tokens=tokens, n_layers=max([int(k) + 1 for k in layers if str(k).isdigit()] or [0]),
                              n_heads=max(n_heads, 1), hidden_size=max(hidden, 1), options=options,
                              text=str(data.get("text", "")), model_id=str(data.get("model", "")),
                              architecture=str(data.get("model_type", "")), causal=data.get("model_type") != "bert")
    for key, entry in layers.items():
        if not str(key).isdigit() or not isinstance(entry, dict):
            raise _bad(where, f"layers key {key!r} is not a layer index with an object")
        _read_layer(result, int(key), entry, where)
    return result


def _check_config(options: dict, n: int, where: str) -> None:
    """The config's values have the types the rest of the package relies on (a file is untrusted input)."""
    steps = options["n_steps"]
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0):
        raise _bad(where, f"config.num_steps must be a positive integer; got {steps!r}")
    for key in ("quadrature", "baseline_layer", "baseline_att", "baseline_mlp"):
        if not isinstance(options[key], str):
            raise _bad(where, f"config.{key} must be a string; got {options[key]!r}")
    targets = options["target_tokens"]
    if not isinstance(targets, list) or not all(
            isinstance(j, int) and not isinstance(j, bool) and 0 <= j < n for j in targets):
        raise _bad(where, f"config.target_tokens must be a list of token indices in [0, {n}); got {targets!r}")


def _read_layer(result: LayerAttribution, layer: int, entry: dict, where: str) -> None:
    n = result.length
    if "z2z" in entry:
        matrix = _field(entry["z2z"], "matrix", list, where, f"layer {layer} z2z")
        if len(matrix) != n:
            raise _bad(where, f"layer {layer} z2z matrix has {len(matrix)} rows for {n} tokens")
        cols = result.route("layer", layer, result.options["baseline_layer"], create=True)
        cols.scores[:] = np.stack([_floats(row, n, where, f"layer {layer} z2z row") for row in matrix]).T
        done = np.all(np.isfinite(cols.scores), axis=1)
        completeness = entry["z2z"].get("completeness")
        cols.error[:] = _floats(completeness, n, where, "z2z completeness") if completeness else np.nan
        cols.expected[done] = cols.scores[done].sum(axis=1)  # upstream reports no totals: the sums stand in
    for key, target in (entry.get("targets") or {}).items():
        if not str(key).isdigit() or not 0 <= int(key) < n:
            raise _bad(where, f"layer {layer} target {key!r} is not a token index")
        j = int(key)
        if "z2u" in target:
            heads = _field(target["z2u"], "heads", dict, where, f"layer {layer} target {j} z2u")
            cols = result.route("att", layer, result.options["baseline_att"], create=True)
            for h, values in heads.items():
                if not str(h).isdigit() or int(h) >= result.n_heads:
                    raise _bad(where, f"layer {layer} target {j} head {h!r} is not a head index")
                contributions = _field(values, "contributions", list, where, f"layer {layer} target {j} head {h}")
                cols.scores[j, int(h)] = _floats(contributions, n, where, f"layer {layer} target {j} head {h}")
                cols.expected[j, int(h)] = np.nansum(cols.scores[j, int(h)])
                err = values.get("completeness")
                cols.error[j, int(h)] = np.nan if err is None else err
        if "u2z" in target:
            u2z = target["u2z"]
            contributions = _field(u2z, "contributions", list, where, f"layer {layer} target {j} u2z")
            total = _field(u2z, "l2_total", (int, float), where, f"layer {layer} target {j} u2z")
            cols = result.route("mlp", layer, result.options["baseline_mlp"], create=True)
            cols.scores[j] = _floats(contributions, result.hidden_size, where, f"layer {layer} target {j} u2z")
            cols.expected[j] = total
            cols.error[j] = abs(cols.scores[j].sum() - total) / total if total else 0.0


@file_reader('a saved LayerAttribution bundle',
             'Pass the path given to LayerAttribution.save(), with both files')
def load_layer_attribution(path) -> LayerAttribution:
    header, arrays = load_bundle(path, LIG_SCHEMA)
    where = str(path)
    tokens = tokens_from_header(header, where)
    n_layers, n_heads = require(header, where, "n_layers", int), require(header, where, "n_heads", int)
    hidden = require(header, where, "hidden_size", int)
    result = LayerAttribution(
        tokens=tokens, n_layers=n_layers, n_heads=n_heads, hidden_size=hidden,
        options=require(header, where, "options", dict), text=str(header.get("text", "")),
        model_id=str(header.get("model_id", "")), architecture=str(header.get("architecture", "")),
        causal=bool(header.get("causal", True)),
    )
    for item in require(header, where, "columns", list):
        if (not isinstance(item, list) or len(item) != 3 or item[0] not in OPTION_OF_ROUTE
                or not isinstance(item[2], int)):
            raise AttrWidgetsError(f"Cannot read {where}: column key {item!r} is malformed. Re-save the result.")
        route, baseline, layer = item
        empty = RouteColumns.empty(route, len(tokens), n_heads, hidden)
        name = f"{route}|{baseline}|{layer}"
        result.columns[(route, baseline, layer)] = RouteColumns(*(
            require_array(arrays, where, f"{name}|{part}", getattr(empty, part).shape)
            for part in ("scores", "expected", "error")))
    for layer in require(header, where, "attention_layers", list):
        result.attention[int(layer)] = require_array(arrays, where, f"attention|{layer}",
                                                     (n_heads, len(tokens), len(tokens)))
    return result
