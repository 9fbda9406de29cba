"""Graph, NodeTable, PrunedGraph: an attribution graph as data (docs/methods/graph.md).

A Graph holds the node table and the full adjacency (rows targets, columns sources; torch dense or scipy CSR
for big graphs) and stays in the kernel; what crosses to the browser or to the public viewer is a PrunedGraph.
Node order inside a Graph: [features, or attention + mlp components] [errors] [tokens] [logits], as
circuit-tracer orders its adjacency, so "the last n_tokens + n_logits nodes" are always the fixed ones.
Saving and the viewer's JSON live in graph_write.py, loading in graph_io.py; the math in influence.py.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from attrwidgets.core import frames
from attrwidgets.core.graph import influence as inf
from attrwidgets.core.graph import pruning
from attrwidgets.core.graph.graph_write import graph_dict, save_graph, write_viewer_json
from attrwidgets.core.graph.node_table import KINDS, NodeTable
from attrwidgets.core.rendering import PageExport
from attrwidgets.errors import AttrWidgetsError, renamed_method

__all__ = ["FEATURE_LIKE", "KINDS", "Graph", "NodeTable", "PrunedGraph"]

FEATURE_LIKE = ("feature", "attention", "mlp")  # need an incoming and an outgoing kept edge
# block of each kind in the node order: features/components, errors, tokens, logits
_GROUP = np.array([0, 1, 2, 3, 0, 0])
_NO_ENGINE = (
    "This graph has no model attached (it was loaded from disk): pass model=... to aw.load_graph(path, model=...) "
    "or rebuild it with aw.attribution_graph(model, prompt, ...)."
)


def _as_adjacency(adjacency, n: int):
    if inf.is_sparse(adjacency):
        import scipy.sparse as sp

        adjacency = sp.csr_array(adjacency)
    elif not isinstance(adjacency, torch.Tensor):
        adjacency = torch.as_tensor(np.asarray(adjacency, dtype=np.float32))
    if tuple(adjacency.shape) != (n, n):
        raise AttrWidgetsError(
            f"The adjacency has shape {tuple(adjacency.shape)}; expected ({n}, {n}) to match the {n} nodes "
            "(rows targets, columns sources)."
        )
    return adjacency


class Graph(PageExport):
    """An attribution graph: nodes, the full adjacency (rows targets, columns sources), and the logit weights."""

    def __init__(
        self,
        nodes: NodeTable,
        adjacency,
        *,
        logit_weights,
        prompt: str,
        tokens: list[str],
        token_ids: list[int],
        n_layers: int,
        metadata: dict | None = None,
        labeler=None,
        engine=None,
    ):
        if not isinstance(nodes, NodeTable):
            raise AttrWidgetsError(f"nodes must be a NodeTable; got {type(nodes).__name__}.")
        self.nodes = nodes
        n = len(nodes)
        self.adjacency = _as_adjacency(adjacency, n)
        groups = _GROUP[nodes.kind]
        if n and np.any(np.diff(groups) < 0):
            raise AttrWidgetsError(
                "Nodes must be ordered [features or attention/mlp components] [errors] [tokens] [logits]; "
                f"node {int(np.flatnonzero(np.diff(groups) < 0)[0]) + 1} breaks that order."
            )
        self.n_logits = int((groups == 3).sum())
        self.n_tokens = int((groups == 2).sum())
        weights = np.asarray(torch.as_tensor(logit_weights).detach().cpu(), dtype=np.float32).ravel()
        if weights.size != self.n_logits or self.n_logits == 0:
            raise AttrWidgetsError(
                f"logit_weights has {weights.size} entries but the graph has {self.n_logits} logit nodes (one weight each, "
                "at least one logit)."
            )
        if len(tokens) != len(token_ids):
            raise AttrWidgetsError(
                f"tokens ({len(tokens)}) and token_ids ({len(token_ids)}) must have the same length."
            )
        self.logit_weights = weights
        self.prompt = str(prompt)
        self.tokens = [str(t) for t in tokens]
        self.token_ids = [int(t) for t in token_ids]
        self.n_layers = int(n_layers)
        if nodes.n_layers != self.n_layers:
            raise AttrWidgetsError(
                f"The node table was built for {nodes.n_layers} layers, the graph says {self.n_layers}."
            )
        self.metadata = dict(metadata or {})
        self.labeler = labeler
        self.engine = engine
        self._model = None
        self._label_done = np.zeros(n, dtype=bool)
        self._prune_cache: dict = {}

    def __repr__(self) -> str:
        storage = "sparse" if self.is_sparse else "dense"
        return f"Graph({len(self.nodes)} nodes, {self.n_layers} layers, {len(self.tokens)} tokens, {storage}; {self.prompt[:40]!r})"

    @property
    def is_sparse(self) -> bool:
        return inf.is_sparse(self.adjacency)

    @property
    def max_steps(self) -> int:
        # Longest causal path: token -> (attention -> mlp) per layer -> logit; anything longer is a cycle.
        return 2 * self.n_layers + 4

    @functools.cached_property
    def rank(self) -> np.ndarray:
        """A topological rank per node: every causal edge runs to a strictly higher rank (tokens 0, then per layer
        features / errors / attention heads, then that layer's MLP, logits last). Lets influence take one pass."""
        nodes = self.nodes
        rank = 1 + 2 * nodes.layer.astype(np.int64) + (nodes.kind == KINDS.index("mlp"))
        rank[nodes.mask("token")] = 0
        rank[nodes.mask("logit")] = 2 * self.n_layers + 2
        return rank

    @functools.cached_property
    def influence(self) -> np.ndarray:
        values = inf.node_influence(
            self.adjacency, self.logit_weights, max_steps=self.max_steps, rank=self.rank
        )
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        values = np.asarray(values, dtype=np.float32)
        self.nodes.influence = values.copy()
        return values

    def prune(self, node_threshold: float = 0.8, edge_threshold: float = 0.98, *, keep=()) -> PrunedGraph:
        """The nodes holding node_threshold of the influence and edges holding edge_threshold, dangling nodes dropped.
        Tokens, logits and the node ids in `keep` (e.g. pinned ones) are always kept."""
        node_threshold = pruning.check_threshold("node_threshold", node_threshold)
        edge_threshold = pruning.check_threshold("edge_threshold", edge_threshold)
        keep_index = tuple(sorted({self._resolve(k) for k in keep}))
        key = (node_threshold, edge_threshold, keep_index)
        if key not in self._prune_cache:
            result = pruning.prune_masks(
                self.adjacency,
                self.logit_weights,
                self.n_tokens,
                self.n_logits,
                node_threshold,
                edge_threshold,
                needs_input=self.nodes.mask(*FEATURE_LIKE),
                max_steps=self.max_steps,
                influence=self.influence,
                always_keep=np.array(keep_index, dtype=np.int64),
                rank=self.rank,
            )
            if len(self._prune_cache) > 8:  # slider sweeps: keep a few recent results, not all
                self._prune_cache.pop(next(iter(self._prune_cache)))
            self._prune_cache[key] = PrunedGraph(self, node_threshold, edge_threshold, result)
        return self._prune_cache[key]

    @functools.cached_property
    def _scores(self) -> tuple[float, float]:
        tokens = np.flatnonzero(self.nodes.mask("token"))
        errors = np.flatnonzero(self.nodes.mask("error"))
        return pruning.graph_scores(
            self.adjacency, self.logit_weights, tokens, errors, influence=self.influence
        )

    @property
    def replacement_score(self) -> float:
        """Share of token-to-logit influence that does not end in error nodes (1.0 = no error node matters)."""
        return self._scores[0]

    @property
    def completeness_score(self) -> float:
        """Influence-weighted share of node inputs that come from features or tokens rather than errors."""
        return self._scores[1]

    def _resolve(self, node) -> int:
        if isinstance(node, str):
            return self.nodes.index(node)
        i = int(node)
        if not -len(self.nodes) <= i < len(self.nodes):
            raise AttrWidgetsError(f"Node index {i} is out of range for {len(self.nodes)} nodes.")
        return i % len(self.nodes)

    def labels(self, indices) -> list[str]:
        """Labels of these nodes (indices or node ids), computed on first use and cached in nodes.label."""
        if isinstance(indices, (str, int, np.integer)):
            indices = [indices]
        idx = [self._resolve(i) for i in np.asarray(indices, dtype=object).ravel().tolist()]
        todo = sorted({i for i in idx if not self._label_done[i]})
        kinds = self.nodes.kind
        fixed = [i for i in todo if KINDS[kinds[i]] in ("token", "logit")]
        for i in fixed:
            self.nodes.label[i] = self._token_label(i)
            self._label_done[i] = True
        rest = [i for i in todo if KINDS[kinds[i]] not in ("token", "logit")]
        if rest and self.labeler is not None:
            texts = list(self.labeler(np.array(rest, dtype=np.int64)))
            if len(texts) != len(rest):
                raise AttrWidgetsError(f"The labeler returned {len(texts)} labels for {len(rest)} nodes.")
            for i, text in zip(rest, texts):
                self.nodes.label[i] = str(text)
                self._label_done[i] = True
        return [self.nodes.label[i] for i in idx]

    def _token_label(self, i: int) -> str:
        if self.nodes.kind[i] == KINDS.index("token"):
            pos = int(self.nodes.position[i])
            return self.tokens[pos] if 0 <= pos < len(self.tokens) else f"#{self.nodes.feature[i]}"
        j = i - (len(self.nodes) - self.n_logits)
        names = self.metadata.get("logit_tokens")
        if isinstance(names, (list, tuple)) and len(names) == self.n_logits:
            return str(names[j])
        a, b = int(self.nodes.feature[i]), int(self.nodes.contrast[i])
        return f"#{a} - #{b}" if b >= 0 else f"#{a}"

    def to_viewer_json(
        self, path=None, *, node_threshold: float = 0.8, edge_threshold: float = 0.98, pinned=(), slug=None
    ) -> dict:
        """The pruned graph in the public graph viewer's JSON (circuit-tracer's create_graph_files format, which
        Neuronpedia's viewer reads); written to `path` when given."""
        pruned = self.prune(node_threshold, edge_threshold, keep=pinned)
        return write_viewer_json(pruned, path, pinned=pinned, slug=slug)

    to_json = renamed_method("to_json", "to_viewer_json")

    def to_dict(self) -> dict:
        """Our schema (`schema`, `version`): what save() writes, the full adjacency and node table as nested lists.
        The public viewer's layout is to_viewer_json()."""
        return graph_dict(self)

    def to_dataframe(self):
        """One row per edge: source node id, target node id, weight (core/frames.py)."""
        return frames.dataframe(frames.graph_table(self))

    def save(self, path):
        """A JSON header + a safetensors file beside it (no pickle); read back with aw.load_graph(path)."""
        return save_graph(self, path)

    def intervene(self, interventions, frozen: bool = True, **kw):
        """Set or ablate nodes ({node_id: new_activation}) and see the top logits change (the engine's work)."""
        if self.engine is None:
            raise AttrWidgetsError(_NO_ENGINE)
        return self.engine.intervene(self, interventions, frozen=frozen, **kw)

    def rebuild(self, **changes) -> Graph:
        """The same graph recomputed with some settings changed (targets=..., max_feature_nodes=..., ...; prompt=
        token ids: the graph of another prompt on the same model and transcoder)."""
        if self.engine is None:
            raise AttrWidgetsError(_NO_ENGINE)
        return self.engine.rebuild(self, **changes)


class PrunedGraph:
    """What crosses to the browser: kept nodes (indices into graph.nodes) and kept edges (indices into node_index)."""

    def __init__(
        self, graph: Graph, node_threshold: float, edge_threshold: float, result: pruning.PruneResult
    ):
        self.graph = graph
        self.node_threshold = node_threshold
        self.edge_threshold = edge_threshold
        self.node_index = np.flatnonzero(result.node_mask).astype(np.int64)
        local = np.full(len(graph.nodes), -1, dtype=np.int64)
        local[self.node_index] = np.arange(self.node_index.size)
        self.edge_source = local[result.edge_source].astype(np.int32)
        self.edge_target = local[result.edge_target].astype(np.int32)
        self.edge_weight = result.edge_weight.astype(np.float32)
        self.cumulative = result.cumulative[self.node_index].astype(np.float32)
        self.influence = result.influence[self.node_index].astype(np.float32)

    def __len__(self) -> int:
        return self.node_index.size

    def __repr__(self) -> str:
        return (
            f"PrunedGraph({len(self)} of {len(self.graph.nodes)} nodes, {self.edge_weight.size} edges; "
            f"node_threshold={self.node_threshold}, edge_threshold={self.edge_threshold})"
        )

    @property
    def node_ids(self) -> list[str]:
        ids = self.graph.nodes.node_id
        return [ids[i] for i in self.node_index.tolist()]

    def to_viewer_json(self, path=None, *, pinned=(), slug=None) -> dict:
        return write_viewer_json(self, path, pinned=pinned, slug=slug)

    to_json = renamed_method("to_json", "to_viewer_json")
