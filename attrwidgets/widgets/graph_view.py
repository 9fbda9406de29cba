"""GraphView: an attribution graph (docs/methods/graph.md) in the notebook, pruned in the kernel.

Front-end: js/graph_view.ts -> attrwidgets/static/graph_view.js, same trait names (js/lib/graph_model.ts
GraphViewModel). Nodes sit at their position (x) and layer (y): tokens along the bottom, logits on top; node
size by influence, edge width by |weight|, colour by sign; pan and zoom. Only the pruned graph crosses to the
browser (graph_payload.py); the full adjacency stays here.

Four things recompute on the worker thread (widgets/live_values.py: last request wins, busy, errors in the
view, the graph shown until the next one is ready): the node and edge thresholds re-prune; `target` (typed, or
a click on a logit node) rebuilds the graph for other logit targets through graph.rebuild; on a source, the
selected target row rebuilds it for the prefix before that row's token (graph_rows.py); and each pruned graph's
labels come from graph.labels. Rebuilt graphs are kept in a small cache (graph_payload.GraphCache), so switching
back is instant. `group` merges heads or whole layers of the shown graph for a first look (graph_group.py), in the
kernel, at once.
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
from attrwidgets.widgets.graph_group import GROUP_MODES, MERGED, check_group, group_payload
from attrwidgets.widgets.graph_payload import (
    NODE_COLUMNS,
    TARGET_SYNTAX,
    GraphCache,
    GraphEntry,
    Payload,
    default_group,
    default_thresholds,
    kinds,
    parse_target,
    payload,
    target_text,
)
from attrwidgets.widgets.graph_rows import TargetRows
from attrwidgets.widgets.live_values import LiveValues
from attrwidgets.widgets.serialization import Tensor
from attrwidgets.widgets.sources import checked_source

LIVE_CACHE = 64  # pruned graphs kept (threshold settings x targets); each is a few arrays of the shown size
_VIEW_TRAITS = ("node_threshold", "edge_threshold", "selected_node", "selected_logit", "pinned", "pinned_only",
                "target", "group", "selected_target")
# selected_target was the selected logit node's index: in every view it is a row of target_positions now. A graph
# without a source has no rows, so there the old name still means the logit (and warns).
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
    GraphView(source=source)                             # the source's prompt; its target rows (selected_target)
    GraphView(source=source, transcoder=tc)              # the same with a transcoder's features
    GraphView(graph, node_threshold=0.6, edge_threshold=0.9, pinned=["3_120_5"], group="heads")
    view.target = "#1234"  /  " Paris"  /  "Paris - London"   # rebuild for other logits (needs the model)
    view.to_viewer_json("graph.json")                           # the public viewer's JSON, with the view's pins

    Click a node: its upstream and downstream paths highlight (selected_node); shift-click pins it (pinned);
    click a logit node: the graph is rebuilt for that logit alone. selected_logit is the selected logit node's
    index among the shown logit nodes (-1 none); selected_position follows the selected node's position, the key
    linked views share (AttrWidget). Built on a source, the view has the source's target rows: selected_target = i
    shows the graph of the prefix before the token at target_positions[i] (-1: the prompt's graph). Without one it
    has no rows, and selected_target stays -1. selected_layer / selected_head (a head clicked in a linked HeadGrid)
    light up that head's nodes.
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
    group = Unicode("none", help=f"merge nodes for a first look: one of {GROUP_MODES} (graph_group.py)").tag(sync=True)
    target_positions = List(Int(), help="(n_targets,) the source's target tokens' positions: one graph per row; [] "
                            "without a source").tag(sync=True)

    _live: LiveValues | None = None

    def __init__(self, graph: Any = None, *, source: Any = None, transcoder: Any = None, **kwargs: Any) -> None:
        """source: an aw.Source shared with other views: the graph of its prompt (built here, once per source and
        transcoder), its target rows and its worker thread. transcoder: the source's graph on a transcoder's
        features (None: on the model's components)."""
        kwargs = renamed_view_keywords(type(self), kwargs, _RENAMED if source is None else {})
        if transcoder is not None and source is None:
            raise AttrWidgetsError("GraphView(transcoder=...) goes with source=...; for a graph alone pass "
                                   "aw.attribution_graph(model, prompt, transcoder=...).")
        if source is not None:
            if graph is not None:
                raise AttrWidgetsError("GraphView takes a graph or source=..., not both.")
            source = checked_source("GraphView", source)
            graph = source.session("graph", **({} if transcoder is None else {"transcoder": transcoder}))
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
        self._rows = TargetRows(source, graph)
        self._pruned: dict[tuple, Any] = {}
        self._shown: Payload | None = None  # as pruned
        self._drawn: Payload | None = None  # as sent: grouped by `group`
        self._logit_ids: list[str] = []
        meta = dict(getattr(graph, "metadata", None) or {})
        first = {**default_thresholds(graph), "group": default_group(graph),
                 **{k: kwargs.pop(k) for k in ("node_threshold", "edge_threshold", "pinned", "group") if k in kwargs}}
        super().__init__(
            tokens=self._rows.tokens(graph), n_layers=int(graph.n_layers), kinds=[*kinds(), MERGED],
            node_columns=list(NODE_COLUMNS), can_rebuild=getattr(graph, "engine", None) is not None,
            target_positions=self._rows.positions, llm_id=str(meta.get("model_id") or meta.get("model") or ""),
            **first,
        )
        self._live = LiveValues(self, self._on_ready, name="attrwidgets-GraphView", source=source)
        self._lock: threading.RLock = self._live.lock
        try:  # the first graph at once (without the labeler's labels), so the view has something to draw
            self._show(self._prune(self._cache.base, (self._cache.base_key, *self._key()[1:]), fetch=False))
            for key, value in kwargs.items():  # after: selected_logit is checked against the shown logits
                setattr(self, key, value)
        except Exception:
            self._live.close()
            raise
        self._ready = True
        self._request()

    # -- what the selection needs ------------------------------------------------------------------------
    def _key(self) -> tuple:
        """((prompt length, targets), node_threshold, edge_threshold, pins); raises AttrWidgetsError for a
        malformed target."""
        graph_key = self._rows.graph_key(int(self.selected_target), parse_target(self.target))
        return (graph_key, float(self.node_threshold), float(self.edge_threshold), tuple(sorted(self.pinned)))

    @observe("node_threshold", "edge_threshold", "target", "pinned")
    def _on_change(self, change: dict) -> None:
        if self._ready:
            self._request()

    @observe("selected_target")
    def _on_row(self, change: dict) -> None:
        """Another row: its own graph. A typed target was for the last row's prefix, so it goes."""
        if not self._ready:
            return
        if self.target:
            self.target = ""  # requests the new row's graph (_on_change)
        else:
            self._request()

    @observe("group")
    def _on_group(self, change: dict) -> None:
        if self._ready and self._shown is not None:
            with self._lock:
                self._show(self._shown)

    @validate("group")
    def _valid_group(self, proposal: dict) -> str:
        return check_group(proposal["value"])

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
        return graph.engine.estimate(graph, **self._rows.rebuild_keywords(key[0]))

    def _compute(self, key: tuple, cancel: threading.Event) -> Payload:
        """Runs on the worker thread: the graph for key's targets (rebuilt unless cached), pruned and labelled."""
        from attrwidgets.core.forward import ComputationCancelled

        graph_key = key[0]
        with self._lock:
            entry = self._cache.get(graph_key)
        if entry is None:
            # attribution_graph's own keywords: no progress bar in the cell; a superseded rebuild stops early.
            graph = self._cache.base.graph.rebuild(**self._rows.rebuild_keywords(graph_key), progress=False,
                                                   cancel=cancel)
            with self._lock:
                shown = self._shown.key[0] if self._shown else self._cache.base_key
                for old in self._cache.put(graph_key, graph, keep=shown):  # their pruned graphs go too: showing
                    self._forget(old)  # one needs its Graph
                entry = self._cache.get(graph_key)
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
        out = payload(key, entry.graph, pruned, labels, {**entry.totals(scores=fetch), "position": key[0][0]})
        out.label_error = label_error
        out.tokens = self._rows.tokens(entry.graph)
        return out

    def _forget(self, graph_key: tuple) -> None:
        for cache in (self._pruned, self._live.cache):
            for k in [k for k in cache if k[0] == graph_key]:
                del cache[k]

    def _on_ready(self, key: tuple, value: Payload) -> None:
        """Lock held: the current request's pruned graph is ready."""
        self._show(value)
        for cache in (self._pruned, self._live.cache):
            for old in list(cache)[:-LIVE_CACHE]:
                if old != key:
                    del cache[old]

    def _show(self, value: Payload) -> None:
        """Lock held: send `value` grouped by `group`. The selected node's logit and position follow it; a position
        the new graph's prompt lacks (a shorter prefix) is none."""
        drawn = group_payload(value, self.group, list(self.kinds))
        kind = drawn.node_data[0] if drawn.node_data.shape[1] else np.zeros(0)
        logit = kinds().index("logit")
        self._logit_ids = [drawn.node_ids[i] for i in np.flatnonzero(kind == logit)]
        self._shown, self._drawn = value, drawn
        with self.hold_sync():
            if value.tokens and value.tokens != self.tokens:
                self.tokens = value.tokens
            for name, v in drawn.traits().items():
                setattr(self, name, v)
            self.shown_target = target_text(value.key[0][1])
            self.selected_logit = self._logit_of(self.selected_node)
            position = self._position_of(self.selected_node)
            if position >= 0 or self.selected_position >= len(self.tokens):
                self.selected_position = position
            if value.label_error:
                self.error = value.label_error

    # -- selection: selected_node <-> selected_logit, and the node's position ---------------------------------
    def _logit_of(self, node_id: str) -> int:
        return self._logit_ids.index(node_id) if node_id in self._logit_ids else -1

    def _column(self, node_id: str, name: str) -> int | None:
        """A column of node `node_id` as drawn (a merged node's too), else as pruned; None when not shown."""
        for shown in (self._drawn, self._shown):
            if shown is not None and node_id in shown.node_ids:
                return int(shown.node_data[NODE_COLUMNS.index(name), shown.node_ids.index(node_id)])
        return None

    def _position_of(self, node_id: str) -> int:
        position = self._column(node_id, "position")
        return -1 if position is None else position

    @observe("selected_node")
    def _on_node(self, change: dict) -> None:
        """A node selects what it is in the vocabulary every view shares: its position, and for a node inside a
        layer (a feature, head, MLP or error node, or a merged group) that layer, and for a head node its head (a
        merged node of several heads has feature -1: no head)."""
        node = change["new"]
        layer, kind = self._column(node, "layer"), self._column(node, "kind")
        inside = layer is not None and 0 <= layer < self.n_layers
        head = self._column(node, "feature") if inside and self.kinds[kind] == "attention" else -1
        with self.hold_trait_notifications():
            self.selected_logit = self._logit_of(node)
            self.selected_position = self._position_of(node)
            self.selected_layer = layer if inside else -1
            self.selected_head = max(-1, head)

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

    _view_checks = (("node_threshold", "_valid_threshold"), ("edge_threshold", "_valid_threshold"),
                    ("group", "_valid_group"))

    # -- Python API --------------------------------------------------------------------------------------
    @property
    def graph(self) -> Any:
        """The Graph shown (the first one, or the one rebuilt for `shown_target` or the selected target row)."""
        with self._lock:
            key = self._shown.key[0] if self._shown is not None else self._cache.base_key
            return (self._cache.get(key) or self._cache.base).graph

    @property
    def pruned(self) -> Any:
        """The PrunedGraph shown (graph.prune at the shown thresholds; before `group` merges nodes)."""
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
                f"group={self.group!r}, target={self.shown_target or 'own logits'!r}{state})")

