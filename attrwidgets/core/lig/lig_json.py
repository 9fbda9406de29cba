"""LayerAttribution files: the upstream LIG JSON layout (read and write) and our own bundle.

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

from attrwidgets.core.bundle_io import (
    load_bundle,
    read_json_file,
    require,
    require_array,
    save_bundle,
    tokens_from_header,
)
from attrwidgets.core.files import file_reader
from attrwidgets.core.lig.baselines import OPTION_OF_ROUTE, ROUTES
from attrwidgets.core.lig.result import LIG_SCHEMA, LayerAttribution, RouteColumns
from attrwidgets.core.tokens import Token
from attrwidgets.errors import AttrWidgetsError

_DESCRIPTIONS = {
    "layer": "Layer-whole IG (z -> z), L2-scalarized",
    "att": "ATT IG (z -> u) per head, L2-scalarized; head write after the output projection (attrwidgets)",
    "mlp": "MLP IG (u -> z), L2-scalarized",
}


def _num(x):
    x = float(x)
    return x if np.isfinite(x) else None


def _nums(values) -> list:
    return [_num(v) for v in np.asarray(values).ravel()]


def to_upstream_dict(result: LayerAttribution) -> dict:
    opts, texts = result.options, result.token_texts
    routes = opts.get("routes", list(ROUTES))
    targets = opts.get("target_tokens") or list(range(result.length))
    out = {
        "text": result.text, "tokens": texts, "model": result.model_id, "model_type": result.architecture,
        "config": {
            "num_steps": opts.get("n_steps"), "granularity": [r for r in ("att", "mlp", "layer") if r in routes],
            "baseline_att": opts.get("baseline_att"), "baseline_mlp": opts.get("baseline_mlp"),
            "baseline_layer": opts.get("baseline_layer"), "layers": result.layers, "target_tokens": targets,
            "target_head": opts.get("target_head"),
            "include_residual_connection": opts.get("include_residual_connection", True),
            "quadrature": opts.get("quadrature"),
        },
        "boundaries": {"z": "block input", "u": "MLP input (attention output + residual)", "z_next": "block output"},
        "layers": {},
    }
    for layer in result.layers:
        entry: dict = {"layer_idx": layer}
        z2z = result.route("layer", layer)
        if z2z is not None:
            matrix = z2z.scores.T  # upstream: matrix[i][j] = source i -> target j
            entry["z2z"] = {
                "baseline": result.baseline("layer"), "description": _DESCRIPTIONS["layer"],
                "shape": list(matrix.shape), "matrix": [_nums(row) for row in matrix],
                "token_to_token": [{
                    "target_token_idx": j, "target_token": texts[j],
                    "contributions": [{"source_token_idx": i, "source_token": texts[i], "value": _num(matrix[i, j])}
                                      for i in targets],
                } for j in targets],
                "completeness": _nums(z2z.error),
            }
        att, mlp = result.route("att", layer), result.route("mlp", layer)
        if att is not None or mlp is not None:
            entry["targets"] = {}
            for j in targets:
                target = {"target_token_idx": j, "target_token": texts[j]}
                if att is not None:
                    heads = [h for h in range(result.n_heads) if att.has(j, h)]
                    target["z2u"] = {
                        "baseline": result.baseline("att"), "description": _DESCRIPTIONS["att"],
                        "heads": {str(h): {"contributions": _nums(att.scores[j, h]),
                                           "token_l2_norm": _num(np.linalg.norm(att.scores[j, h])),
                                           "completeness": _num(att.error[j, h])} for h in heads},
                    }
                if mlp is not None and mlp.has(j):
                    gap = float(mlp.scores[j].sum() - mlp.expected[j])
                    target["u2z"] = {
                        "baseline": result.baseline("mlp"), "description": _DESCRIPTIONS["mlp"],
                        "contributions": _nums(mlp.scores[j]), "l2_total": _num(mlp.expected[j]),
                        "completeness": {"error": gap, "mean_abs_error": abs(gap), "relative": _num(mlp.error[j])},
                    }
                entry["targets"][str(j)] = target
        out["layers"][str(layer)] = entry
    return out


# -- reading the upstream layout ------------------------------------------------------------------------
def _bad(where: str, what: str) -> AttrWidgetsError:
    return AttrWidgetsError(f"Cannot read {where} as LIG JSON: {what}. Expected the layout `lig.explain` or "
                            "LayerAttribution.to_json writes.")


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


@file_reader("the LIG package's JSON", 'Pass a file written by LayerAttribution.to_json() or the LIG package')
def load_lig_json(path) -> LayerAttribution:
    """Read a LIG JSON (upstream `lig.explain` output or ours) into a LayerAttribution (no model needed)."""
    where = str(path)
    data = read_json_file(path, "Pass a file that `lig.explain` or LayerAttribution.to_json wrote")
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


# -- our own bundle (every baseline's columns, attention weights, real token ids) ------------------------
def save_bundle_of(result: LayerAttribution, path):
    arrays, keys = {}, []
    for (route, baseline, layer), cols in result.columns.items():
        name = f"{route}|{baseline}|{layer}"
        keys.append([route, baseline, layer])
        arrays.update({f"{name}|scores": cols.scores, f"{name}|expected": cols.expected, f"{name}|error": cols.error})
    for layer, weights in result.attention.items():
        arrays[f"attention|{layer}"] = np.asarray(weights, np.float32)
    header = {
        "tokens": [t.to_dict() for t in result.tokens], "n_layers": result.n_layers, "n_heads": result.n_heads,
        "hidden_size": result.hidden_size, "options": result.options, "text": result.text,
        "model_id": result.model_id, "architecture": result.architecture, "causal": result.causal,
        "columns": keys, "attention_layers": sorted(result.attention),
    }
    return save_bundle(path, LIG_SCHEMA, header, arrays)


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
