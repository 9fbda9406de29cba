"""Test material for GraphView: toy graphs (attrwidgets.testing.toy_graph) with a scriptable fake engine that
stands in for the model behind graph.rebuild (delays, a gate, failures; every call recorded)."""

from __future__ import annotations

import threading
import time

import numpy as np

from attrwidgets.core.forward import ComputationCancelled
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import toy_graph


class FakeEngine:
    """graph.engine: rebuild(graph, targets=[...]) returns another toy graph over the same prompt with one logit
    node per target (prompt=[ids]: over that many positions). delays: {targets tuple: seconds}; fail: {targets tuple: exception}; gate: rebuild waits on it;
    a set `cancel` event (a newer request) makes it raise ComputationCancelled, as attribution_graph does."""

    def __init__(self, delays=None, fail=None, gate: threading.Event | None = None, seed: int = 0, **graph_kw):
        self.delays = dict(delays or {})
        self.fail = dict(fail or {})
        self.gate = gate
        self.seed = seed
        self.graph_kw = {k: v for k, v in graph_kw.items() if k != "n_logits"}
        self.calls: list[tuple] = []
        self.cancelled: list[tuple] = []
        self.lock = threading.Lock()

    def rebuild(self, graph, **changes):
        targets = tuple(tuple(t) if isinstance(t, list) else t for t in changes["targets"] or ())
        assert changes.get("progress") is False  # the view asks for no progress bar in the cell
        cancel = changes.get("cancel")
        with self.lock:
            self.calls.append(targets)
        if self.gate is not None and targets in self.delays:
            self.gate.wait(10)
        time.sleep(self.delays.get(targets, 0.0))
        if cancel is not None and cancel.is_set():  # as attribution_graph does between its batches
            self.cancelled.append(targets)
            raise ComputationCancelled("cancelled")
        if targets in self.fail:
            raise self.fail[targets]
        # The same seed keeps the prompt's tokens; fewer logits change the edges (a different graph). prompt= (a
        # target row's prefix) gives a graph of that many positions; targets=None its own 3 logits.
        shape = {**self.graph_kw, **({"n_pos": len(changes["prompt"])} if "prompt" in changes else {})}
        new = toy_graph(self.seed, n_logits=len(targets) or 3, **shape)
        new.engine = self
        return new

    def intervene(self, graph, interventions, frozen=True, **kw):
        raise AttrWidgetsError("FakeEngine does not intervene.")


def graph_with_engine(seed: int = 0, **kw):
    engine = FakeEngine(**{k: kw.pop(k) for k in ("delays", "fail", "gate") if k in kw}, seed=seed, **kw)
    graph = toy_graph(seed, **kw)
    graph.engine = engine
    return graph, engine


def ancestors(edges: np.ndarray, node: int) -> set[int]:
    """Nodes with a path into `node` over the (3, e) edge rows (source, target, weight)."""
    src, dst = edges[0].astype(int), edges[1].astype(int)
    seen, todo = set(), [node]
    while todo:
        i = todo.pop()
        for s in src[dst == i]:
            if s not in seen and s != node:
                seen.add(int(s))
                todo.append(int(s))
    return seen


def descendants(edges: np.ndarray, node: int) -> set[int]:
    return ancestors(edges[[1, 0, 2]], node)
