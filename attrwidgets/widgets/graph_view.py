"""GraphView: an attribution graph (docs/methods/graph.md) in the notebook, pruned in the kernel.

Front-end: js/graph_view.ts -> attrwidgets/static/graph_view.js, same trait names (js/lib/graph_model.ts
GraphViewModel). Nodes sit at their position (x) and layer (y): tokens along the bottom, logits on top; node
size by influence, edge width by |weight|, colour by sign; pan and zoom. Only the pruned graph crosses to the
browser (graph_payload.py); the full adjacency stays here.

Three things recompute on the worker thread (widgets/live.py LiveValues: last request wins, busy, errors in the
view, the graph shown until the next one is ready): the node and edge thresholds re-prune; `target` (typed, or
a click on a logit node) rebuilds the graph for other logit targets through graph.rebuild (kept in a small
cache, so switching back is instant); and each pruned graph's labels come from graph.labels.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np
import traitlets
from traitlets import Bool, Dict, Float, Int, List, Unicode, observe, validate

from attrwidgets.errors import AttrWidgetsError, renamed_method
from attrwidgets.widgets.base import AttrWidget, bundle, renamed_view_keywords, unknown_keyword_error
from attrwidgets.widgets.graph_payload import (
    NODE_COLUMNS,
    TARGET_SYNTAX,
    GraphCache,
    GraphEntry,
    Payload,
    default_thresholds,
    graph_tokens,
    kinds,
    parse_target,
    payload,
    target_text,
)
from attrwidgets.widgets.live import LiveValues
from attrwidgets.widgets.serialization import Tensor
from attrwidgets.widgets.sources import checked_source

LIVE_CACHE = 64  # pruned graphs kept (threshold settings x targets); each is a few arrays of the shown size
_VIEW_TRAITS = ("node_threshold", "edge_threshold", "selected_node", "selected_logit", "pinned", "pinned_only",
                "target")
# selected_target was the selected logit node's index: in every view it is a row of target_positions now.
_RENAMED = {"selected_target": "selected_logit"}


def _threshold(name: str, value: Any) -> float:
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise traitlets.TraitError(f"{name} must be in (0, 1] (a fraction of the total influence to keep), got "
                                   f"{value}.")
    return value


class GraphView(AttrWidget):
    """An attribution graph, pruned at `node_threshold` / `edge_threshold` (graph.prune), in the notebook.

    GraphView(graph)                                     # aw.attribution_graph(...) or aw.load_graph(path)
    GraphView(graph, node_threshold=0.6, edge_threshold=0.9, pinned=["3_120_5"])
    view.target = "#1234"  /  " Paris"  /  "Paris - London"   # rebuild for other logits (needs the model)
    view.to_viewer_json("graph.json")                           # the public viewer's JSON, with the view's pins

    Click a node: its upstream and downstream paths highlight (selected_node); shift-click pins it (pinned);
    click a logit node: the graph is rebuilt for that logit alone. selected_logit is the selected logit node's
    index among the shown logit nodes (-1 none); selected_position follows the selected node's position, the key
    linked views share (AttrWidget). A graph explains one position's logits: it has no target rows, and
    selected_target stays -1.
    """

    _esm = bundle("graph_view")

    n_layers = Int(0, help="the model's layer count: logit nodes sit at layer n_layers").tag(sync=True)
    kinds = List(Unicode(), help="node kind names; node_data's kind row holds codes into it").tag(sync=True)
    node_columns = List(Unicode(), help="names of node_data's rows (graph_payload.NODE_COLUMNS)").tag(sync=True)
    # (len(node_columns), k): one column per shown node, rows kind code, layer (-1 tokens, n_layers logits),
    # position, feature (token id for token and logit nodes), contrast (-1 or the b of logit(a) - logit(b)),
    # activation, influence, cumulative influence.
    node_data = Tensor(ndim=2).tag(sync=True)
    node_ids = List(Unicode(), help="(k,) node ids of the shown nodes (the public viewer's format)").tag(sync=True)
    node_labels = List(Unicode(), help="(k,) labels of the shown nodes; '' = none (UNTRUSTED)").tag(sync=True)
    # (3, e): rows source, target (indices into the shown nodes, as float32) and the signed weight of each kept
    # edge; sources are upstream (adjacency[target, source]).
    edges = Tensor(ndim=2, shape=(3, None)).tag(sync=True)
    summary = Dict(help="n_nodes, n_edges (whole graph), shown_nodes, shown_edges, replacement_score, "
                   "completeness_score (None = unknown), prompt, model").tag(sync=True)
    node_threshold = Float(0.8, help="keep nodes up to this fraction of cumulative influence").tag(sync=True)
    edge_threshold = Float(0.98, help="keep edges up to this fraction of cumulative influence").tag(sync=True)
    selected_logit = Int(-1, help="index of the selected logit node among the shown logit nodes; -1 none").tag(
        sync=True)
    pinned_only = Bool(False, help="show only the pinned nodes and the edges among them").tag(sync=True)
    target = Unicode("", help=f"the logit target(s) asked for: {TARGET_SYNTAX}").tag(sync=True)
    shown_target = Unicode("", help="the target the shown graph answers ('' = its own logits)").tag(sync=True)
    can_rebuild = Bool(False, help="the graph has its engine (model): other targets can be computed").tag(sync=True)

    _live: LiveValues | None = None

    def __init__(self, graph: Any = None, *, source: Any = None, **kwargs: Any) -> None:
        """source: an aw.Source shared with other views: the graph of its prompt (built here, once per source)
        and its worker thread."""
        kwargs = renamed_view_keywords(type(self), kwargs, _RENAMED)
        if source is not None:
            if graph is not None:
                raise AttrWidgetsError("GraphView takes a graph or source=..., not both.")
            source = checked_source("GraphView", source)
            graph = source.session("graph")
        if graph is None or not all(hasattr(graph, a) for a in ("nodes", "prune", "tokens")):
            got = "nothing" if graph is None else type(graph).__name__
            raise AttrWidgetsError(f"GraphView expects a Graph, e.g. GraphView(aw.attribution_graph(model, prompt)) "
                                   f"or GraphView(aw.load_graph(path)); got {got}.")
        view = [t for t in self.public_traits() if t in _VIEW_TRAITS]
        for key in kwargs:
            if key not in view:
                raise unknown_keyword_error(type(self), key, view)
        self._ready = False
        self._cache = GraphCache(graph)
        self._pruned: dict[tuple, Any] = {}
        self._shown: Payload | None = None
        self._logit_ids: list[str] = []
        meta = dict(getattr(graph, "metadata", None) or {})
        first = {**default_thresholds(graph),
                 **{k: kwargs.pop(k) for k in ("node_threshold", "edge_threshold", "pinned") if k in kwargs}}
        super().__init__(
            tokens=graph_tokens(graph), n_layers=int(graph.n_layers), kinds=list(kinds()),
            node_columns=list(NODE_COLUMNS), can_rebuild=getattr(graph, "engine", None) is not None,
            llm_id=str(meta.get("model_id") or meta.get("model") or ""), **first,
        )
        self._live = LiveValues(self, self._on_ready, name="attrwidgets-GraphView", source=source)
        self._lock: threading.RLock = self._live.lock
        try:  # the first graph at once (without the labeler's labels), so the view has something to draw
            self._show(self._prune(self._cache.base, ((), *self._key()[1:]), fetch=False))
            for key, value in kwargs.items():  # after: selected_logit is checked against the shown logits
                setattr(self, key, value)
        except Exception:
            self._live.close()
            raise
        self._ready = True
        self._request()

    # -- what the selection needs ------------------------------------------------------------------------
    def _key(self) -> tuple:
        """(targets, node_threshold, edge_threshold, pins); raises AttrWidgetsError for a malformed target."""
        return (parse_target(self.target), float(self.node_threshold), float(self.edge_threshold),
                tuple(sorted(self.pinned)))

    @observe("node_threshold", "edge_threshold", "target", "pinned")
    def _on_change(self, change: dict) -> None:
        if self._ready:
            self._request()

    def _request(self) -> None:
        with self._lock:
            try:
                key = self._key()
            except AttrWidgetsError as exc:  # a malformed target: say so, keep showing the graph
                self._live.forget()
                self.error = str(exc)
                return
            self._live.request(key, lambda cancel: self._compute(key, cancel), estimate=lambda: self._estimate(key))

    def _estimate(self, key: tuple):
        """A rebuild's estimate (None when this target's graph is cached: pruning it is quick)."""
        with self._lock:
            if self._cache.get(key[0]) is not None:
                return None
        graph = self._cache.base.graph
        return graph.engine.estimate(graph, targets=list(key[0]))

    def _compute(self, key: tuple, cancel: threading.Event) -> Payload:
        """Runs on the worker thread: the graph for key's targets (rebuilt unless cached), pruned and labelled."""
        from attrwidgets.core.forward import ComputationCancelled

        targets = key[0]
        with self._lock:
            entry = self._cache.get(targets)
        if entry is None:
            # attribution_graph's own keywords: no progress bar in the cell; a superseded rebuild stops early.
            graph = self._cache.base.graph.rebuild(targets=list(targets), progress=False, cancel=cancel)
            with self._lock:
                evicted = self._cache.put(targets, graph, keep=self._shown.key[0] if self._shown else ())
                for old in evicted:  # their pruned graphs go too: showing one needs its Graph
                    self._forget(old)
                entry = self._cache.get(targets)
        if cancel.is_set():
            raise ComputationCancelled("Computation cancelled: a newer request replaced it.")
        return self._prune(entry, key, fetch=True)

    def _prune(self, entry: GraphEntry, key: tuple, *, fetch: bool) -> Payload:
        pruned = self._pruned.get(key)
        if pruned is None:
            pruned = entry.prune(*key[1:])
            self._pruned[key] = pruned
        index = np.asarray(pruned.node_index, dtype=np.int64)
        label_error = ""
        labels = entry.table_labels(index)
        if fetch:
            try:
                labels = entry.fetch_labels(index)
            except Exception as exc:  # noqa: BLE001 - labels are optional: the graph is shown without them
                label_error = f"labels: {type(exc).__name__}: {exc}"
        out = payload(key, entry.graph, pruned, labels, entry.totals(scores=fetch))
        out.label_error = label_error
        return out

    def _forget(self, targets: tuple) -> None:
        for cache in (self._pruned, self._live.cache):
            for k in [k for k in cache if k[0] == targets]:
                del cache[k]

    def _on_ready(self, key: tuple, value: Payload) -> None:
        """Lock held: the current request's pruned graph is ready."""
        self._show(value)
        for cache in (self._pruned, self._live.cache):
            for old in list(cache)[:-LIVE_CACHE]:
                if old != key:
                    del cache[old]

    def _show(self, value: Payload) -> None:
        kind = value.node_data[0] if value.node_data.shape[1] else np.zeros(0)
        logit = kinds().index("logit")
        self._logit_ids = [value.node_ids[i] for i in np.flatnonzero(kind == logit)]
        self._shown = value
        with self.hold_sync():
            for name, v in value.traits().items():
                setattr(self, name, v)
            self.shown_target = target_text(value.key[0])
            self.selected_logit = self._logit_of(self.selected_node)
            self.selected_position = self._position_of(self.selected_node)
            if value.label_error:
                self.error = value.label_error

    # -- selection: selected_node <-> selected_logit, and the node's position ---------------------------------
    def _logit_of(self, node_id: str) -> int:
        return self._logit_ids.index(node_id) if node_id in self._logit_ids else -1

    def _column(self, node_id: str, name: str) -> int | None:
        shown = self._shown
        if shown is None or node_id not in shown.node_ids:
            return None
        return int(shown.node_data[NODE_COLUMNS.index(name), shown.node_ids.index(node_id)])

    def _position_of(self, node_id: str) -> int:
        position = self._column(node_id, "position")
        return -1 if position is None else position

    @observe("selected_node")
    def _on_node(self, change: dict) -> None:
        """A node selects what it is in the vocabulary every view shares: its position, and for a node inside a
        layer (a feature, head, MLP or error node) that layer, and for a head node its head."""
        node = change["new"]
        layer, kind = self._column(node, "layer"), self._column(node, "kind")
        inside = layer is not None and 0 <= layer < self.n_layers
        with self.hold_trait_notifications():
            self.selected_logit = self._logit_of(node)
            self.selected_position = self._position_of(node)
            self.selected_layer = layer if inside else -1
            self.selected_head = self._column(node, "feature") if inside and kinds()[kind] == "attention" else -1

    @observe("selected_logit")
    def _on_logit(self, change: dict) -> None:
        row = int(change["new"])
        if row >= 0 and self.selected_node != self._logit_ids[row]:
            self.selected_node = self._logit_ids[row]
        elif row < 0 and self.selected_node in self._logit_ids:
            self.selected_node = ""

    # -- validation at the boundary ----------------------------------------------------------------------
    @validate("node_threshold", "edge_threshold")
    def _valid_threshold(self, proposal: dict) -> float:
        return _threshold(proposal["trait"].name, proposal["value"])

    @validate("selected_logit")
    def _valid_logit(self, proposal: dict) -> int:
        value, n = int(proposal["value"]), len(self._logit_ids)
        if not -1 <= value < n:
            raise traitlets.TraitError(f"selected_logit must be -1 (none) or in [0, {n}) (the shown logit nodes), "
                                       f"got {value}.")
        return value

    @validate("pinned")
    def _valid_pinned(self, proposal: dict) -> list[str]:
        return list(dict.fromkeys(str(p) for p in proposal["value"]))  # once each, in pin order

    _view_checks = (("node_threshold", "_valid_threshold"), ("edge_threshold", "_valid_threshold"))

    # -- Python API --------------------------------------------------------------------------------------
    @property
    def graph(self) -> Any:
        """The Graph shown (the first one, or the one rebuilt for `shown_target`)."""
        with self._lock:
            key = self._shown.key[0] if self._shown is not None else ()
            return (self._cache.get(key) or self._cache.base).graph

    @property
    def pruned(self) -> Any:
        """The PrunedGraph shown (graph.prune at the shown thresholds)."""
        with self._lock:
            return self._pruned.get(self._shown.key) if self._shown is not None else None

    def to_viewer_json(self, path: Any = None) -> dict:
        """The shown graph in the public viewer's JSON at the view's thresholds, pinnedIds = the view's pins
        (pins of nodes this graph lacks, e.g. from another target's graph, are left out with a warning)."""
        graph = self.graph
        ids = set(map(str, graph.nodes.node_id))
        pins = [p for p in self.pinned if p in ids]
        if len(pins) < len(self.pinned):
            warnings.warn(f"to_viewer_json: pinned node(s) {[p for p in self.pinned if p not in ids]} are not in this graph "
                          f"(shown target {self.shown_target or 'its own logits'!r}); left out.", stacklevel=2)
        return graph.to_viewer_json(path, node_threshold=float(self.node_threshold),
                                    edge_threshold=float(self.edge_threshold), pinned=pins)

    to_json = renamed_method("to_json", "to_viewer_json")

    def __repr__(self) -> str:
        s = self.summary or {}
        state = " busy" if self.busy else ""
        return (f"GraphView({s.get('shown_nodes', 0)} of {s.get('n_nodes', 0)} nodes, {s.get('shown_edges', 0)} "
                f"edges, node_threshold={self.node_threshold}, edge_threshold={self.edge_threshold}, "
                f"target={self.shown_target or 'own logits'!r}{state})")

