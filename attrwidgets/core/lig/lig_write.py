"""Writing LayerAttribution files: the upstream LIG JSON layout and our own bundle (core/lig/lig_json.py reads
them back). Writers read the result's attributes only, so result.py can call them without an import cycle.

The upstream layout is described in core/lig/lig_json.py.
"""

from __future__ import annotations

import numpy as np

from attrwidgets.core.bundle_io import bundle_dict, save_bundle
from attrwidgets.core.lig.baselines import ROUTES

LIG_SCHEMA = "attrwidgets.layer_attribution/1"

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


def to_upstream_dict(result) -> dict:
    """A LayerAttribution in the upstream package's JSON layout (matrix[i][j] = source i -> target j)."""
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


def bundle_of(result) -> tuple[dict, dict]:
    """Our bundle's header and arrays: every baseline's columns, attention weights, real token ids."""
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
    return header, arrays


def save_bundle_of(result, path):
    return save_bundle(path, LIG_SCHEMA, *bundle_of(result))


def our_dict(result) -> dict:
    return bundle_dict(LIG_SCHEMA, *bundle_of(result))
