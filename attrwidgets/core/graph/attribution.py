"""aw.attribution_graph(): one prompt's attribution graph on the frozen local replacement model.

    graph = aw.attribution_graph(model, "The capital of France is")              # components, no training
    graph = aw.attribution_graph(model, prompt, transcoder=aw.load_transcoder(d)) # features + errors

Steps: prompt ids (core/graph/prompt.py) -> one real forward frozen (core/frozen.py) -> the replacement's
sources (transcoder_graph.py or component_graph.py) -> logit targets -> rows by batched backward sweeps
(rows.py) -> a Graph (graph.py) whose engine (engine.py) can rebuild it with other targets and intervene.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import torch

from attrwidgets.core.estimate import refuse_if_too_big
from attrwidgets.core.frozen import FrozenForward
from attrwidgets.core.graph.engine import GraphEngine
from attrwidgets.core.graph.graph import Graph
from attrwidgets.core.graph.graph_io import read_graph
from attrwidgets.core.graph.logit_targets import LogitTargets, select_logits
from attrwidgets.core.graph.node_table import NodeTable
from attrwidgets.core.graph.prompt import prompt_ids, token_texts
from attrwidgets.core.graph.replacement import LOGIT, Replacement
from attrwidgets.core.graph.rows import RowBuilder
from attrwidgets.errors import AttrWidgetsError, checked_keywords
from attrwidgets.models import as_handle

DEFAULT_BATCH = 64
DENSE_LIMIT = 1 << 31  # bytes: a bigger adjacency is kept as scipy CSR (most entries are causally zero)


def _positive_int(name: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise AttrWidgetsError(f"{name} must be a positive integer{' or None' if allow_none else ''}; got {value!r}.")
    return int(value)


def _fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise AttrWidgetsError(f"{name} must be a number in (0, 1]; got {value!r}.")
    return float(value)


def default_memory_budget() -> int:
    """Half of the memory available now (the adjacency and its rows live in RAM)."""
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        free = 8 << 30
    return int(free // 2)


def resolve_transcoder(transcoder):
    if transcoder is None:
        return None
    if isinstance(transcoder, (str, Path)):
        from attrwidgets.core.graph.checkpoint import load_transcoder

        return load_transcoder(transcoder)
    from attrwidgets.core.graph.transcoder import Transcoder

    if not isinstance(transcoder, Transcoder):
        raise AttrWidgetsError(f"transcoder must be a Transcoder, a folder or None; got {type(transcoder).__name__}.")
    return transcoder


def build_replacement(handle, ids: torch.Tensor, transcoder) -> Replacement:
    frozen = FrozenForward(handle, ids)
    if transcoder is None:
        from attrwidgets.core.graph.component_graph import ComponentReplacement

        return ComponentReplacement(frozen)
    from attrwidgets.core.graph.transcoder_graph import TranscoderReplacement

    d_model = frozen.blocks[0].x_in.shape[1]
    transcoder.check_model(frozen.n_layers, d_model, getattr(handle, "model_id", "this model"))
    return TranscoderReplacement(frozen, transcoder)


def _check_memory(rep: Replacement, n_rows: int, n_logits: int, budget: int, max_feature_nodes) -> None:
    n_cols = rep.n_columns
    need = 4 * (n_rows + n_logits) * n_cols
    if need <= budget:
        return
    fits = max(0, budget // (4 * n_cols) - n_logits)
    raise AttrWidgetsError(
        f"This graph needs about {need / 2**30:.1f} GiB for {n_rows} feature rows x {n_cols} columns "
        f"({rep.n_target_candidates} active {'features' if hasattr(rep, 'transcoder') else 'components'}), beyond "
        f"the memory budget of {budget / 2**30:.1f} GiB. Pass max_feature_nodes={fits} (or fewer) to keep the "
        "most influential ones, shorten the prompt, or raise memory_budget= (bytes).")


@checked_keywords
def attribution_graph(model, prompt, *, transcoder=None, max_logits: int = 10, logit_prob: float = 0.95,
                      max_feature_nodes: int | None = None, batch_size: int | None = None, targets=None,
                      memory_budget: int | None = None, progress: bool = True,
                      cancel: threading.Event | None = None) -> Graph:
    """The attribution graph of `prompt` (a string, chat messages, or token ids used as they are).

    transcoder: a Transcoder or its folder (features + error nodes); None builds the graph on the model's
    components (attention heads and MLP outputs per layer and position). targets: None for the smallest set of
    top logits with cumulative probability >= logit_prob (at most max_logits), or a list of tokens (ids or
    strings) and contrast pairs (a, b) meaning logit(a) - logit(b). max_feature_nodes: None keeps every active
    feature (or component); a number keeps the most influential ones.
    """
    handle = as_handle(model)
    max_logits = _positive_int("max_logits", max_logits)
    logit_prob = _fraction("logit_prob", logit_prob)
    max_feature_nodes = _positive_int("max_feature_nodes", max_feature_nodes, allow_none=True)
    batch_size = _positive_int("batch_size", batch_size if batch_size is not None else DEFAULT_BATCH)
    budget = default_memory_budget() if memory_budget is None else _positive_int("memory_budget", memory_budget)
    transcoder = resolve_transcoder(transcoder)
    ids, text = prompt_ids(handle, prompt)
    # The captured forward first (every layer's attention); the adjacency is checked below with exact sizes.
    refuse_if_too_big(handle, "attribution_graph", len(ids), 0,
                      {"max_feature_nodes": 1, "max_logits": max_logits, "batch_size": batch_size})
    with torch.no_grad():
        rep = build_replacement(handle, ids, transcoder)
        logits = select_logits(handle, rep.frozen, targets, max_logits=max_logits, logit_prob=logit_prob)
        k = rep.n_target_candidates if max_feature_nodes is None else min(max_feature_nodes, rep.n_target_candidates)
        _check_memory(rep, k, len(logits.ids), budget, max_feature_nodes)
        builder = RowBuilder(rep, batch_size=batch_size, progress=progress, cancel=cancel)
        n = rep.n_columns + len(logits.ids)
        if k == rep.n_target_candidates and 4 * n * n <= DENSE_LIMIT:  # written in place: one copy in memory
            adjacency = torch.zeros(n, n)
            builder.fill_adjacency(logits.directions, adjacency)
            rows, row_columns = None, torch.arange(k)
        else:
            adjacency = None
            rows, row_columns = builder.build(logits.directions, logits.weights, k)
    graph = assemble(handle, rep, rows, row_columns, logits, ids, text, adjacency=adjacency)
    graph.metadata["settings"] = {
        "max_logits": max_logits, "logit_prob": logit_prob, "max_feature_nodes": max_feature_nodes,
        "batch_size": batch_size, "targets": targets, "memory_budget": memory_budget}
    _set_engine(graph, handle, transcoder, rep)
    return graph


def _set_engine(graph: Graph, handle, transcoder, rep: Replacement) -> None:
    graph.engine = GraphEngine(handle, transcoder, graph.metadata.get("settings", {}), rep, attribution_graph)
    graph.labeler = graph.engine.labeler(graph)


def load_graph(path, model=None, transcoder=None) -> Graph:
    """Read a graph written by graph.save(path). Pass `model` (and, for a transcoder graph, its `transcoder`)
    to re-attach them for labels, intervene and rebuild."""
    graph = read_graph(path)
    if model is not None:
        attach_engine(graph, model, transcoder)
    elif transcoder is not None:
        raise AttrWidgetsError("A transcoder alone cannot be attached: pass model=... with it.")
    return graph


def attach_engine(graph: Graph, model, transcoder=None) -> None:
    """Re-attach a model (and transcoder) to a loaded graph: labels, intervene and rebuild work again."""
    handle = as_handle(model)
    transcoder = resolve_transcoder(transcoder)
    if graph.metadata.get("method") == "transcoder" and transcoder is None:
        raise AttrWidgetsError("This graph was built with a transcoder: pass transcoder=... (the Transcoder or its "
                               "folder) together with model=... to aw.load_graph.")
    with torch.no_grad():
        rep = build_replacement(handle, torch.tensor(graph.token_ids, dtype=torch.long), transcoder)
    logits = graph.nodes.mask("logit")
    targets = [(int(a), int(b)) if b >= 0 else int(a) for a, b in zip(graph.nodes.feature[logits],
                                                                      graph.nodes.contrast[logits])]
    values = select_logits(handle, rep.frozen, targets, max_logits=1, logit_prob=1.0).values.numpy()
    if rep.n_layers != graph.n_layers or not np.allclose(values, graph.nodes.activation[logits], rtol=1e-3, atol=1e-3):
        raise AttrWidgetsError("This graph was built with another model (or transcoder): its logit targets do not "
                               "have the values they had. Pass the model it was built with.")
    _set_engine(graph, handle, transcoder, rep)


def assemble(handle, rep: Replacement, rows: torch.Tensor | None, row_columns: torch.Tensor,
             logits: LogitTargets, ids: torch.Tensor, text: str, adjacency: torch.Tensor | None = None) -> Graph:
    """Rows (logits first, then targets in visiting order) -> a Graph in node order [kept features or
    components][errors][tokens][logits]. adjacency: already in that order (RowBuilder.fill_adjacency); rows
    are then None."""
    n_logits = len(logits.ids)
    order = torch.argsort(row_columns)
    selected = row_columns[order]
    fixed = torch.arange(rep.n_target_candidates, rep.n_columns)  # errors and tokens
    col_read = torch.cat([selected, fixed])
    n = len(col_read) + n_logits
    k = len(selected)
    if adjacency is None:
        adjacency = _adjacency(rows[n_logits:][order][:, col_read], rows[:n_logits][:, col_read], n, k)
    cols = rep.columns()
    pick = col_read
    nodes = NodeTable(
        kind=np.concatenate([cols["kind"][pick].numpy(), np.full(n_logits, LOGIT)]),
        layer=np.concatenate([cols["layer"][pick].numpy(), np.full(n_logits, rep.n_layers)]),
        position=np.concatenate([cols["position"][pick].numpy(), np.full(n_logits, rep.length - 1)]),
        feature=np.concatenate([cols["feature"][pick].numpy(), logits.ids.numpy()]),
        activation=np.concatenate([cols["activation"][pick].numpy(), logits.values.numpy()]),
        contrast=np.concatenate([np.full(len(pick), -1), logits.contrast.numpy()]),
        n_layers=rep.n_layers,
    )
    transcoder = getattr(rep, "transcoder", None)
    metadata = {
        "method": "components" if transcoder is None else "transcoder",
        "model": getattr(handle, "model_id", ""),
        "transcoder": None if transcoder is None else {
            "kind": transcoder.kind, "activation": transcoder.activation, "n_features": transcoder.n_features,
            "name": transcoder.config.get("name", "")},
        "scan": "" if transcoder is None else str(transcoder.config.get("scan", transcoder.config.get("name", ""))),
        "logit_tokens": logits.labels,
        "logit_probabilities": logits.probabilities.tolist(),
        "active_candidates": rep.n_target_candidates,
    }
    return Graph(nodes, adjacency, logit_weights=logits.weights, prompt=text, tokens=token_texts(handle, ids),
                 token_ids=ids.tolist(), n_layers=rep.n_layers, metadata=metadata)


def _adjacency(feature_rows: torch.Tensor, logit_rows: torch.Tensor, n: int, k: int):
    n_logits = len(logit_rows)
    if 4 * n * n <= DENSE_LIMIT:
        A = torch.zeros(n, n)
        A[:k, : n - n_logits] = feature_rows
        A[n - n_logits:, : n - n_logits] = logit_rows
        return A
    import scipy.sparse as sp

    def block(rows):
        return sp.hstack([sp.csr_array(rows.numpy()), sp.csr_array((len(rows), n_logits), dtype=np.float32)])

    middle = sp.csr_array((n - k - n_logits, n), dtype=np.float32)
    return sp.csr_array(sp.vstack([block(feature_rows), middle, block(logit_rows)]))
