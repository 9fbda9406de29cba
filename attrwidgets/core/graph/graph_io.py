"""Reading graph files written by graph.save (core/graph/graph_write.py describes the layout): a JSON header
and a safetensors file beside it, schema-checked, no pickle. aw.load_graph (core/graph/attribution.py) reads
through read_graph and attaches a model when given one."""

from __future__ import annotations

import numpy as np
import torch

from attrwidgets.core.bundle_io import bundle_paths, load_bundle, require
from attrwidgets.core.files import file_reader
from attrwidgets.core.graph.graph import Graph, NodeTable
from attrwidgets.core.graph.graph_write import NODE_COLUMNS, SCHEMA, SCHEMA_VERSION
from attrwidgets.errors import AttrWidgetsError

_RESAVE = "Re-save the graph with graph.save(path)"


# --- reading ------------------------------------------------------------------------------------------------


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
def read_graph(path) -> Graph:
    """Read a graph written by graph.save(path), without a model (aw.load_graph attaches one:
    core/graph/attribution.py)."""
    header, arrays = load_bundle(path, SCHEMA)
    where = str(bundle_paths(path)[0])
    version = require(header, where, "schema_version", int)
    if version != SCHEMA_VERSION:
        raise AttrWidgetsError(
            f"Cannot read {where}: graph file version {version}; this attrwidgets reads version {SCHEMA_VERSION}. "
            "Upgrade attrwidgets or re-save the graph with the version that reads it."
        )
    n = _array(arrays, where, "kind").size
    columns = {name: _array(arrays, where, name, n) for name in NODE_COLUMNS}
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
    return graph
