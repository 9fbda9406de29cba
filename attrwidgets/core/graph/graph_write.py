"""Writing graph files: graph.save (JSON header + safetensors, no pickle; core/graph/graph_io.py reads it) and
the public viewer's JSON. Writers read the graph's attributes only, so graph.py calls them without an import
cycle.

Saved layout (core/bundle_io.py): `x.json` holds the schema name and version, prompt, tokens, layer count,
metadata and labels; `x.safetensors` holds the node columns, the logit weights and the adjacency, dense as one
(n, n) float32 tensor or sparse as CSR (indptr, indices, data) with its shape in the header.

Viewer JSON: circuit-tracer's create_graph_files output (metadata, qParams, nodes, links) for the pruned graph,
so the file opens in the public graph viewer. Error node ids follow later upstream versions ("{layer}_-1_{pos}"),
not 0.5's "0_{layer}_{pos}", which collides with layer-0 feature ids.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

from attrwidgets.core.bundle_io import bundle_dict, save_bundle
from attrwidgets.core.files import write_text_atomic
from attrwidgets.core.graph.influence import is_sparse
from attrwidgets.core.graph.node_table import KINDS
from attrwidgets.errors import AttrWidgetsError

SCHEMA = "attrwidgets.graph"
SCHEMA_VERSION = 1
VIEWER_SCHEMA_VERSION = 1
NODE_COLUMNS = {
    "kind": np.int8,
    "layer": np.int32,
    "position": np.int32,
    "feature": np.int64,
    "activation": np.float32,
    "contrast": np.int64,
    "influence": np.float32,
}
_FEATURE_TYPE = {
    "feature": "cross layer transcoder",
    "error": "mlp reconstruction error",
    "token": "embedding",
    "logit": "logit",
    "attention": "attention head",
    "mlp": "mlp output",
}


# --- save / load ---------------------------------------------------------------------------------------------


def _adjacency_arrays(adjacency) -> tuple[dict, dict]:
    if is_sparse(adjacency):
        import scipy.sparse as sp

        csr = sp.csr_array(adjacency)
        csr.sort_indices()
        arrays = {
            "adjacency_indptr": csr.indptr.astype(np.int64),
            "adjacency_indices": csr.indices.astype(np.int64),
            "adjacency_data": csr.data.astype(np.float32),
        }
        return {"format": "csr", "shape": list(csr.shape)}, arrays
    dense = adjacency.detach().to("cpu", torch.float32).numpy()
    return {"format": "dense", "shape": list(dense.shape)}, {"adjacency": dense}


def graph_bundle(graph) -> tuple[dict, dict]:
    """The saved header and arrays of a graph (what save_graph writes and Graph.to_dict gives)."""
    nodes = graph.nodes
    layout, arrays = _adjacency_arrays(graph.adjacency)
    arrays.update({name: getattr(nodes, name).astype(dtype) for name, dtype in NODE_COLUMNS.items()})
    arrays["logit_weights"] = graph.logit_weights.astype(np.float32)
    arrays["label_done"] = graph._label_done.astype(np.uint8)
    header = {
        "schema_version": SCHEMA_VERSION,
        "prompt": graph.prompt,
        "tokens": graph.tokens,
        "token_ids": graph.token_ids,
        "n_layers": graph.n_layers,
        "metadata": graph.metadata,
        "labels": nodes.label,
        "adjacency": layout,
    }
    return header, arrays


def save_graph(graph, path) -> Path:
    """Write graph to path(.json) + path.safetensors; returns the JSON path."""
    return save_bundle(path, SCHEMA, *graph_bundle(graph))


def graph_dict(graph) -> dict:
    return bundle_dict(SCHEMA, *graph_bundle(graph))


# --- the public viewer's JSON ----------------------------------------------------------------------------------


def _slug(graph, slug) -> str:
    if slug is not None:
        return str(slug)
    text = re.sub(r"[^a-z0-9]+", "-", graph.prompt.lower()).strip("-")[:40]
    return text or "graph"


def _float(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _viewer_node(graph, i: int, cumulative: float, label: str) -> dict:
    nodes = graph.nodes
    kind = KINDS[nodes.kind[i]]
    layer, pos, feat = int(nodes.layer[i]), int(nodes.position[i]), int(nodes.feature[i])
    node_id = nodes.node_id[i]
    record = {
        "node_id": node_id,
        "feature": feat,
        "layer": str(layer),
        "ctx_idx": pos,
        "feature_type": _FEATURE_TYPE[kind],
        "token_prob": 0.0,
        "is_target_logit": False,
        "run_idx": 0,
        "reverse_ctx_idx": 0,
        "jsNodeId": f"{node_id.rsplit('_', 1)[0]}-0",  # one id per feature across positions, as upstream
        "clerp": label,
        "influence": _float(cumulative),
        "activation": _float(nodes.activation[i]),
    }
    if kind == "token":
        record.update(feature=pos, layer="E", jsNodeId=f"E_{feat}-{pos}")
    elif kind == "logit":
        j = i - (len(nodes) - graph.n_logits)
        prob, contrast = float(graph.logit_weights[j]), int(nodes.contrast[i])
        js_id = f"L_{feat}-{contrast}-{pos}" if contrast >= 0 else f"L_{feat}-{pos}"
        record.update(
            layer=str(graph.n_layers + 1),
            token_prob=prob,
            is_target_logit=j == 0,
            jsNodeId=js_id,
            clerp=f'Output "{label}" (p={prob:.3f})',
            influence=None,
        )
    return record


def viewer_json(pruned, *, pinned=(), slug=None) -> dict:
    """The pruned graph as the public graph viewer's JSON document."""
    graph = pruned.graph
    pinned_ids = [graph.nodes.node_id[graph._resolve(p)] for p in pinned]
    kept = set(pruned.node_ids)
    missing = [p for p in pinned_ids if p not in kept]
    if missing:
        raise AttrWidgetsError(
            f"Pinned nodes {missing[:5]} are not in this pruned graph; prune with keep=pinned."
        )
    index = pruned.node_index.tolist()
    labels = graph.labels(index)
    nodes = [
        _viewer_node(graph, i, c, label) for i, c, label in zip(index, pruned.cumulative.tolist(), labels)
    ]
    ids = [n["node_id"] for n in nodes]
    links = [
        {"source": ids[s], "target": ids[t], "weight": float(w)}
        for s, t, w in zip(
            pruned.edge_source.tolist(), pruned.edge_target.tolist(), pruned.edge_weight.tolist()
        )
    ]
    metadata = {
        "slug": _slug(graph, slug),
        "scan": str(graph.metadata.get("scan") or "attrwidgets"),
        "transcoder_list": list(graph.metadata.get("transcoder_list", [])),
        "prompt_tokens": list(graph.tokens),
        "prompt": graph.prompt,
        "node_threshold": pruned.node_threshold,
        "edge_threshold": pruned.edge_threshold,
        "schema_version": VIEWER_SCHEMA_VERSION,
        "generator": {"name": "attrwidgets"},
    }
    q_params = {"pinnedIds": pinned_ids, "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    return {"metadata": metadata, "qParams": q_params, "nodes": nodes, "links": links}


def write_viewer_json(pruned, path=None, *, pinned=(), slug=None) -> dict:
    document = viewer_json(pruned, pinned=pinned, slug=slug)
    if path is not None:
        text = json.dumps(document, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
        write_text_atomic(path, text)
    return document
