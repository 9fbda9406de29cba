"""What the GraphView sends for one pruned graph, the syntax of its target box, and its small cache of graphs.

Only the pruned graph crosses to the browser (docs/architecture.md, "Data crossing to the browser"): node columns and
edges as two float32 buffers, ids and labels as short JSON lists. The full adjacency stays in the kernel.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attrwidgets.errors import AttrWidgetsError
from attrwidgets.widgets.serialization import to_numpy

# Rows of the (len(NODE_COLUMNS), k) `node_data` buffer, one column per shown node (js/lib/graph_model.ts).
# kind: code into `kinds`; layer: -1 tokens, n_layers logits; feature: the feature index (the token id for
# token and logit nodes); contrast: vocab id b of a contrast logit logit(a) - logit(b), else -1; influence /
# cumulative: the pruned graph's (cumulative: the share of total influence up to this node, in rank order);
# members: how many of the graph's nodes it stands for (1, or more for a grouped mode's merged node, graph_group.py).
NODE_COLUMNS = ("kind", "layer", "position", "feature", "contrast", "activation", "influence", "cumulative",
                "members")
# Rows of the (3, e) `edges` buffer: indices into the shown nodes (exact in float32 below 2**24 nodes) and the
# signed weight. An edge runs from source (upstream) to target (downstream), as adjacency[target, source].
EDGE_ROWS = ("source", "target", "weight")
GRAPH_CACHE = 8  # rebuilt graphs kept besides the first one (other targets, other target rows)...
# ...while their adjacencies take at most this much: a component graph's dense adjacency grows with the square of its
# nodes (the default model: 9 MB for a 6-token prompt, 471 MB for a 37-token chat prompt).
GRAPH_CACHE_BYTES = 1 << 30
TARGET_SYNTAX = ('a token as typed (" Paris"), a quoted token ("\\" Paris\\""), a vocab id ("#1234"), or a '
                 'contrast "a - b" of two of those (logit(a) - logit(b)); empty: the graph\'s own targets')

_CONTRAST = re.compile(r"\s+-\s+")


# The view's first pruning. A transcoder graph keeps circuit-tracer's (0.8, 0.98). A component graph (every head
# and MLP a node) is far denser: at (0.8, 0.98) the default model keeps 311-770 nodes and 12,605-49,114 edges on
# three real prompts, one solid block; at (0.55, 0.85) it keeps 57-165 nodes and 156-1,063 edges (README,
# "The GraphView"). The sliders go anywhere from there.
TRANSCODER_THRESHOLDS = {"node_threshold": 0.8, "edge_threshold": 0.98}
COMPONENT_THRESHOLDS = {"node_threshold": 0.55, "edge_threshold": 0.85}


def default_thresholds(graph: Any) -> dict:
    method = (getattr(graph, "metadata", None) or {}).get("method")
    return dict(COMPONENT_THRESHOLDS if method == "components" else TRANSCODER_THRESHOLDS)


# The view's first grouping (graph_group.py). A transcoder graph's features are the point of it: none merged. A
# component graph opens with COMPONENT_GROUP (README, "The GraphView", says what each mode leaves).
COMPONENT_GROUP = "layers"


def default_group(graph: Any) -> str:
    method = (getattr(graph, "metadata", None) or {}).get("method")
    return COMPONENT_GROUP if method == "components" else "none"


def graph_tokens(graph: Any) -> list[dict]:
    """A graph's prompt as the token records every view takes (Token.to_dict()). The graph keeps each token's
    text and id; which are special is known when its model is attached."""
    engine = getattr(graph, "engine", None)
    tokenizer = getattr(getattr(engine, "handle", None), "tokenizer", None)
    specials = set(getattr(tokenizer, "all_special_ids", None) or ())
    return [{"id": int(i), "text": str(t), "clean": str(t), "segment": "prompt", "special": int(i) in specials}
            for t, i in zip(graph.tokens, graph.token_ids)]


def kinds() -> tuple[str, ...]:
    from attrwidgets.core.graph.graph import KINDS

    return tuple(KINDS)


def _item(text: str, *, exact: bool) -> int | str:
    s = text.strip()
    if re.fullmatch(r"#\d+", s):
        return int(s[1:])
    if len(s) >= 2 and s[0] == '"':  # a quoted token (a lone '"' is the quote token itself)
        try:
            value = json.loads(s)
            if not isinstance(value, str):
                raise json.JSONDecodeError("not one string", s, 0)
        except json.JSONDecodeError as exc:
            raise AttrWidgetsError(f"Target {s} is not a valid quoted string ({exc.msg}); "
                                   f"write {TARGET_SYNTAX}.") from exc
        if not value:
            raise AttrWidgetsError(f'Target "" is empty; write {TARGET_SYNTAX}.')
        return value
    if not s:
        raise AttrWidgetsError(f"A side of the contrast {text!r} is empty; write {TARGET_SYNTAX}.")
    return text if exact else s  # a lone token keeps its spaces (" Paris"); a contrast's sides are trimmed


def parse_target(text: str) -> tuple:
    """The target box's text -> the key of the graph it asks for (also graph.rebuild's `targets`).

    '' -> () (the graph's own targets); '#1234' -> (1234,); ' Paris' -> (' Paris',);
    '"Paris" - "London"' or 'Paris - London' -> (('Paris', 'London'),).
    """
    text = str(text).rstrip("\r\n")
    if not text.strip():
        return ()
    quoted = text.strip().startswith('"') and text.strip().endswith('"') and text.strip().count('"') == 2
    parts = [] if quoted else _CONTRAST.split(text.strip(), maxsplit=1)
    if len(parts) == 2 and all(p.strip() for p in parts):
        return ((_item(parts[0], exact=False), _item(parts[1], exact=False)),)
    return (_item(text, exact=True),)


def target_text(key: tuple) -> str:
    """Inverse of parse_target for the keys it makes (the box shows this after a logit click)."""
    def one(item: Any) -> str:
        return f"#{item}" if isinstance(item, int) else json.dumps(item, ensure_ascii=False)

    if not key:
        return ""
    (item,) = key
    return f"{one(item[0])} - {one(item[1])}" if isinstance(item, tuple) else one(item)


def score(graph: Any, name: str) -> float | None:
    """graph.replacement_score / completeness_score (a property or a method); None when absent or not finite."""
    value = getattr(graph, name, None)
    if callable(value):
        value = value()
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def edge_count(adjacency: Any) -> int:
    """Non-zero entries of a dense (torch or numpy) or scipy sparse adjacency."""
    if hasattr(adjacency, "nnz"):
        return int(adjacency.count_nonzero()) if hasattr(adjacency, "count_nonzero") else int(adjacency.nnz)
    return int(np.count_nonzero(to_numpy(adjacency)))


def _column(values: Any, index: np.ndarray) -> np.ndarray:
    return to_numpy(values)[index].astype(np.float32)


def _contrast(nodes: Any, index: np.ndarray) -> np.ndarray:
    contrast = getattr(nodes, "contrast", None)
    return np.full(len(index), -1, np.float32) if contrast is None else _column(contrast, index)


def adjacency_bytes(graph: Any) -> int:
    """Memory held by a graph's adjacency (dense torch or numpy, or scipy sparse)."""
    adjacency = getattr(graph, "adjacency", None)
    if adjacency is None:
        return 0
    if hasattr(adjacency, "nnz"):
        return sum(int(getattr(adjacency, a).nbytes) for a in ("data", "indices", "indptr") if hasattr(adjacency, a))
    if hasattr(adjacency, "element_size"):
        return int(adjacency.numel() * adjacency.element_size())
    return int(getattr(adjacency, "nbytes", 0))


@dataclass
class Payload:
    """The traits for one pruned graph (js/lib/graph_model.ts decodes them)."""

    key: tuple  # ((prompt length, targets key), node_threshold, edge_threshold, pinned ids kept, sorted)
    node_data: np.ndarray  # (len(NODE_COLUMNS), k)
    edges: np.ndarray  # (3, e)
    node_ids: list[str]
    node_labels: list[str]
    summary: dict
    label_error: str = ""
    tokens: list[dict] = field(default_factory=list)  # the graph's prompt (Token.to_dict() records)

    def traits(self) -> dict:
        return {"node_data": self.node_data, "edges": self.edges, "node_ids": self.node_ids,
                "node_labels": self.node_labels, "summary": self.summary}


def payload(key: tuple, graph: Any, pruned: Any, labels: list[str], summary: dict) -> Payload:
    nodes = graph.nodes
    index = to_numpy(pruned.node_index).astype(np.int64)
    node_data = np.stack([
        _column(nodes.kind, index), _column(nodes.layer, index), _column(nodes.position, index),
        _column(nodes.feature, index), _contrast(nodes, index), _column(nodes.activation, index),
        to_numpy(pruned.influence).astype(np.float32), to_numpy(pruned.cumulative).astype(np.float32),
        np.ones(len(index), np.float32),
    ]) if len(index) else np.zeros((len(NODE_COLUMNS), 0), np.float32)
    edges = np.stack([to_numpy(pruned.edge_source).astype(np.float32), to_numpy(pruned.edge_target).astype(np.float32),
                      to_numpy(pruned.edge_weight).astype(np.float32)])
    ids = [str(nodes.node_id[i]) for i in index]
    return Payload(key, node_data, edges, ids, [str(s) for s in labels],
                   {**summary, "shown_nodes": len(index), "shown_edges": int(edges.shape[1])})


@dataclass
class GraphEntry:
    """One graph and what was computed for it: labels by node index, its totals and scores."""

    graph: Any
    labels: dict[int, str] = field(default_factory=dict)
    summary: dict | None = None
    _ids: frozenset | None = None

    @property
    def ids(self) -> frozenset:
        if self._ids is None:
            self._ids = frozenset(map(str, self.graph.nodes.node_id))
        return self._ids

    def prune(self, node_threshold: float, edge_threshold: float, pinned: tuple) -> Any:
        """graph.prune, pinned nodes of this graph always kept (another target's graph may lack some)."""
        keep = [p for p in pinned if p in self.ids]
        extra = {"keep": keep} if keep else {}
        return self.graph.prune(node_threshold=node_threshold, edge_threshold=edge_threshold, **extra)

    def totals(self, scores: bool) -> dict:
        """Node and edge counts of the whole graph, prompt and model; its scores once `scores` asked for them
        (they need the graph's influence: computed on the worker, not while the view is being made)."""
        g = self.graph
        if self.summary is None:
            meta = dict(getattr(g, "metadata", None) or {})
            self.summary = {
                "n_nodes": len(g.nodes.node_id), "n_edges": edge_count(g.adjacency),
                "replacement_score": None, "completeness_score": None, "prompt": str(getattr(g, "prompt", "") or ""),
                "model": str(meta.get("model_id") or meta.get("model") or meta.get("llm_id") or ""),
            }
        if scores and self.summary["replacement_score"] is None:
            self.summary.update(replacement_score=score(g, "replacement_score"),
                                completeness_score=score(g, "completeness_score"))
        return dict(self.summary)

    def table_labels(self, index: np.ndarray) -> list[str]:
        """Labels known now (computed before, or in the node table), without calling the labeler."""
        table = self.graph.nodes.label
        return [self.labels.get(int(i), str(table[int(i)] or "")) for i in index]

    def fetch_labels(self, index: np.ndarray) -> list[str]:
        """Labels of `index` from graph.labels, asking it only for nodes not asked before."""
        missing = [int(i) for i in index if int(i) not in self.labels]
        if missing:
            got = list(self.graph.labels(missing))
            if len(got) != len(missing):
                raise AttrWidgetsError(f"graph.labels returned {len(got)} labels for {len(missing)} nodes.")
            self.labels.update(zip(missing, (str(s or "") for s in got), strict=True))
        return [self.labels[int(i)] for i in index]


class GraphCache:
    """The first graph (always kept) and the last GRAPH_CACHE rebuilt ones (at most GRAPH_CACHE_BYTES of
    adjacency), by graph key: (prompt length, targets key), the first graph's being (its length, ())."""

    def __init__(self, graph: Any) -> None:
        self.base = GraphEntry(graph)
        self.base_key = (len(graph.token_ids), ())
        self._rebuilt: OrderedDict[tuple, GraphEntry] = OrderedDict()

    def get(self, key: tuple) -> GraphEntry | None:
        if key == self.base_key:
            return self.base
        entry = self._rebuilt.get(key)
        if entry is not None:
            self._rebuilt.move_to_end(key)
        return entry

    def put(self, key: tuple, graph: Any, keep: tuple) -> list[tuple]:
        """Adds a rebuilt graph; returns the keys evicted (never `keep`, the one shown)."""
        self._rebuilt[key] = GraphEntry(graph)
        evicted = []
        for old in list(self._rebuilt):
            held = sum(adjacency_bytes(e.graph) for e in self._rebuilt.values())
            if len(self._rebuilt) <= GRAPH_CACHE and held <= GRAPH_CACHE_BYTES:
                break
            if old not in (key, keep):
                del self._rebuilt[old]
                evicted.append(old)
        return evicted

    def keys(self) -> list[tuple]:
        return [self.base_key, *self._rebuilt]
