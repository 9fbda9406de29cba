"""Long-format tables of every result type (`result.to_dataframe()`): one row per score, named columns, the
same column names wherever they mean the same thing (position, token, layer, head, score). pandas is
optional: without it, to_dataframe says how to get it.

Token columns hold the clean text. Scores that were not computed (NaN) are left out.
"""

from __future__ import annotations

import numpy as np

from attrwidgets.errors import AttrWidgetsError


def dataframe(columns: dict[str, np.ndarray | list]):
    try:
        import pandas as pd
    except ImportError:
        raise AttrWidgetsError("to_dataframe needs pandas: pip install pandas.") from None
    return pd.DataFrame(columns, columns=list(columns))


def clean_texts(tokens) -> np.ndarray:
    return np.asarray([t if isinstance(t, str) else t.clean for t in tokens], dtype=object)


def decomposition_table(d, token=None) -> dict:
    """Decomposition: per (position, component), the component's logit contribution to `token` when given,
    else the L2 norm of its state."""
    values = d.logit_scores(token) if token is not None else np.linalg.norm(d.states, axis=-1)  # (T, M)
    T, M = values.shape
    position = np.repeat(np.arange(T), M)
    return {"position": position, "token": clean_texts(d.tokens)[position],
            "component": np.tile(np.asarray(d.components, dtype=object), T),
            "component_index": np.tile(np.arange(M), T), "score": values.ravel()}


def head_table(r) -> dict:
    """HeadContributions: per layer, every head's contribution to the target logit, then the layer split's
    stream and bias parts (head -1): each layer's rows sum to the logit, up to completeness_error."""
    L, H = r.contributions.shape
    layer = np.concatenate([np.repeat(np.arange(L), H), np.arange(L), np.arange(L)])
    head = np.concatenate([np.tile(np.arange(H), L), np.full(2 * L, -1)])
    part = ["head"] * (L * H) + ["stream"] * L + ["bias"] * L
    score = np.concatenate([r.contributions.ravel(), r.stream, r.bias])
    return {"layer": layer, "head": head, "part": np.asarray(part, dtype=object), "score": score,
            "target_position": np.full(layer.size, r.position), "target_token": np.full(layer.size, r.target_text)}


def lig_table(r) -> dict:
    """LayerAttribution: every computed score of every route, baseline and layer. Sources are token positions
    (layer, att) or hidden dimensions (mlp: source_position is the dimension, source_token empty)."""
    texts = clean_texts(r.tokens)
    parts = []
    for (route, baseline, layer), cols in sorted(r.columns.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])):
        scores = cols.scores if route == "att" else cols.scores[:, None, :]  # (targets, heads or 1, sources)
        target, head, source = np.nonzero(np.isfinite(scores))
        n = target.size
        parts.append({
            "route": np.full(n, route, dtype=object), "baseline": np.full(n, baseline, dtype=object),
            "layer": np.full(n, layer), "target_position": target, "target_token": texts[target],
            "head": head if route == "att" else np.full(n, -1), "source_position": source,
            "source_token": texts[source] if route != "mlp" else np.full(n, "", dtype=object),
            "score": scores[target, head, source]})
    names = ("route", "baseline", "layer", "target_position", "target_token", "head", "source_position",
             "source_token", "score")
    return {k: np.concatenate([p[k] for p in parts]) if parts else np.array([]) for k in names}


def diffusion_table(r) -> dict:
    """DiffusionAttribution: per unmasked token (row), the score of every source position at its step."""
    n, T = r.scores.shape
    row = np.repeat(np.arange(n), T)
    source = np.tile(np.arange(T), n)
    texts = clean_texts(r.tokens)
    keep = np.isfinite(r.scores.ravel())
    columns = {"step": r.row_step[row], "target_position": r.row_position[row], "target_token_id": r.row_token[row],
               "source_position": source, "source_token": texts[source], "score": r.scores.ravel(),
               "signed_score": r.signed_scores.ravel()}
    return {k: np.asarray(v)[keep] for k, v in columns.items()}


def graph_table(g) -> dict:
    """Graph: one row per edge (non-zero adjacency entry): source and target node ids and the weight."""
    from attrwidgets.core.graph.influence import is_sparse

    adjacency = g.adjacency
    if is_sparse(adjacency):
        coo = adjacency.tocoo()
        target, source, weight = coo.row, coo.col, coo.data
    else:
        dense = adjacency.detach().cpu().numpy() if hasattr(adjacency, "detach") else np.asarray(adjacency)
        target, source = np.nonzero(dense)
        weight = dense[target, source]
    ids = np.asarray(g.nodes.node_id, dtype=object)
    return {"source": ids[source], "target": ids[target], "weight": np.asarray(weight, dtype=np.float32)}
