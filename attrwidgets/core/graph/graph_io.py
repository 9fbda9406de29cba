"""Graph files: save / aw.load_graph (JSON header + safetensors, no pickle) and the public viewer's JSON.

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

from attrwidgets.core.bundle_io import bundle_paths, load_bundle, require, save_bundle
from attrwidgets.core.files import file_reader, write_text_atomic
from attrwidgets.core.graph.graph import KINDS, Graph, NodeTable, PrunedGraph
from attrwidgets.core.graph.influence import is_sparse
from attrwidgets.errors import AttrWidgetsError

SCHEMA = "attrwidgets.graph"
SCHEMA_VERSION = 1
VIEWER_SCHEMA_VERSION = 1
_COLUMNS = {
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
_RESAVE = "Re-save the graph with graph.save(path)"


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


def save_graph(graph: Graph, path) -> Path:
    """Write graph to path(.json) + path.safetensors; returns the JSON path."""
    nodes = graph.nodes
    layout, arrays = _adjacency_arrays(graph.adjacency)
    arrays.update({name: getattr(nodes, name).astype(dtype) for name, dtype in _COLUMNS.items()})
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
    return save_bundle(path, SCHEMA, header, arrays)


def _array(arrays: dict, where: str, name: str, n: int | None = None) -> np.ndarray:
    if name not in arrays:
        raise AttrWidgetsError(f"Cannot read {where}: tensor {name!r} missing. {_RESAVE}.")
    value = arrays[name]
    if n is not None and value.shape != (n,):
        raise AttrWidgetsError(
            f"Cannot read {where}: tensor {name!r} has shape {value.shape}, expected ({n},)."
        )
    return value


def _load_adjacency(header: dict, arrays: dict, where: str, n: int):
    layout = require(header, where, "adjacency", dict)
    shape = layout.get("shape")
    if shape != [n, n]:
        raise AttrWidgetsError(f"Cannot read {where}: adjacency shape {shape} does not match the {n} nodes.")
    if layout.get("format") == "dense":
        dense = _array(arrays, where, "adjacency")
        if dense.shape != (n, n):
            raise AttrWidgetsError(
                f"Cannot read {where}: tensor 'adjacency' has shape {dense.shape}, expected ({n}, {n})."
            )
        return torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32))
    if layout.get("format") == "csr":
        import scipy.sparse as sp

        indptr = _array(arrays, where, "adjacency_indptr", n + 1)
        indices = _array(arrays, where, "adjacency_indices")
        data = _array(arrays, where, "adjacency_data", indices.size)
        if (
            indptr[0] != 0
            or indptr[-1] != indices.size
            or np.any(np.diff(indptr) < 0)
            or (indices.size and (indices.min() < 0 or indices.max() >= n))
        ):
            raise AttrWidgetsError(f"Cannot read {where}: the sparse adjacency is inconsistent. {_RESAVE}.")
        return sp.csr_array((data.astype(np.float32), indices, indptr), shape=(n, n))
    raise AttrWidgetsError(
        f"Cannot read {where}: unknown adjacency format {layout.get('format')!r} (dense or csr)."
    )


@file_reader('a saved Graph (.json with its .safetensors beside it)',
             'Pass the path given to graph.save(), with both files, or re-save the graph')
def load_graph(path, model=None, transcoder=None) -> Graph:
    """Read a graph written by graph.save(path). Pass `model` (and, for a transcoder graph, its `transcoder`)
    to re-attach them for labels, intervene and rebuild."""
    header, arrays = load_bundle(path, SCHEMA)
    where = str(bundle_paths(path)[0])
    version = require(header, where, "schema_version", int)
    if version != SCHEMA_VERSION:
        raise AttrWidgetsError(
            f"Cannot read {where}: graph file version {version}; this attrwidgets reads version {SCHEMA_VERSION}. "
            "Upgrade attrwidgets or re-save the graph with the version that reads it."
        )
    n = _array(arrays, where, "kind").size
    columns = {name: _array(arrays, where, name, n) for name in _COLUMNS}
    n_layers = require(header, where, "n_layers", int)
    labels = require(header, where, "labels", list)
    if len(labels) != n or not all(isinstance(x, str) for x in labels):
        raise AttrWidgetsError(f"Cannot read {where}: 'labels' must be {n} strings. {_RESAVE}.")
    try:
        nodes = NodeTable(
            columns["kind"],
            columns["layer"],
            columns["position"],
            columns["feature"],
            columns["activation"],
            columns["contrast"],
            n_layers=n_layers,
        )
        nodes.label = list(labels)
        graph = Graph(
            nodes,
            _load_adjacency(header, arrays, where, n),
            logit_weights=_array(arrays, where, "logit_weights"),
            prompt=require(header, where, "prompt", str),
            tokens=require(header, where, "tokens", list),
            token_ids=require(header, where, "token_ids", list),
            n_layers=n_layers,
            metadata=require(header, where, "metadata", dict),
        )
    except AttrWidgetsError as exc:
        raise AttrWidgetsError(f"Cannot read {where}: {exc}") from None
    graph._label_done = _array(arrays, where, "label_done", n).astype(bool)
    influence = columns["influence"]
    if np.isfinite(influence).all():
        graph.__dict__["influence"] = influence.astype(np.float32)  # fill the cached property: no recompute
        nodes.influence = influence.astype(np.float32)
    if model is not None:
        from attrwidgets.core.graph.attribution import attach_engine

        attach_engine(graph, model, transcoder)
    elif transcoder is not None:
        raise AttrWidgetsError("A transcoder alone cannot be attached: pass model=... with it.")
    return graph


# --- the public viewer's JSON ----------------------------------------------------------------------------------


def _slug(graph: Graph, slug) -> str:
    if slug is not None:
        return str(slug)
    text = re.sub(r"[^a-z0-9]+", "-", graph.prompt.lower()).strip("-")[:40]
    return text or "graph"


def _float(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _viewer_node(graph: Graph, i: int, cumulative: float, label: str) -> dict:
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


def viewer_json(pruned: PrunedGraph, *, pinned=(), slug=None) -> dict:
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


def write_viewer_json(pruned: PrunedGraph, path=None, *, pinned=(), slug=None) -> dict:
    document = viewer_json(pruned, pinned=pinned, slug=slug)
    if path is not None:
        text = json.dumps(document, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
        write_text_atomic(path, text)
    return document
