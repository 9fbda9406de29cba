"""The graph data layer: node influence, pruning, scores, node ids, viewer JSON, save/load (no model)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from attrwidgets.core.graph.attribution import load_graph
from attrwidgets.core.graph.graph import KINDS, Graph, NodeTable
from attrwidgets.core.graph.influence import node_influence
from attrwidgets.core.graph.pruning import find_threshold, prune_masks
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import toy_graph

TOY_EXPECTED = np.array([1 / 12, 1 / 3, 0, 1 / 4, 0, 0, 1 / 3, 0, 1 / 4, 1 / 4, 1 / 6, 0])
ID_RULES = {
    "cross layer transcoder": r"\d+_\d+_\d+",
    "mlp reconstruction error": r"\d+_-1_\d+",
    "embedding": r"E_\d+_\d+",
    "logit": r"\d+_\d+(-\d+)?_\d+",
    "attention head": r"A\d+_\d+_\d+",
    "mlp output": r"M\d+_\d+",
}


def methods_toy_adjacency() -> np.ndarray:
    """docs/methods/graph.md: edges 11<-{1,3,6,8}, 3<-{0,1,6}, 1<-{9,10}, 0<-9, all weight 10."""
    a = np.zeros((12, 12), dtype=np.float32)
    for target, sources in {11: [1, 3, 6, 8], 3: [0, 1, 6], 1: [9, 10], 0: [9]}.items():
        a[target, sources] = 10.0
    return a


@pytest.mark.parametrize("storage", ["torch", "numpy", "csr"])
def test_methods_toy_graph_influence(storage):
    a = methods_toy_adjacency()
    adjacency = {"torch": torch.from_numpy(a), "numpy": a, "csr": sp.csr_array(a)}[storage]
    got = node_influence(adjacency, [1.0])  # one logit weight: placed on the last row (node 11)
    got = got.numpy() if isinstance(got, torch.Tensor) else got
    np.testing.assert_allclose(got, TOY_EXPECTED, atol=1e-6)
    full = np.zeros(12)
    full[11] = 1.0
    np.testing.assert_allclose(np.asarray(node_influence(adjacency, full)), TOY_EXPECTED, atol=1e-6)


@pytest.mark.parametrize("sparse", [False, True])
def test_cycle_raises(sparse):
    a = methods_toy_adjacency()
    a[9, 11] = 1.0  # the logit feeds a token: a cycle 11 -> 9 -> 1 -> 11
    with pytest.raises(AttrWidgetsError, match="cycle"):
        node_influence(sp.csr_array(a) if sparse else torch.from_numpy(a), [1.0])


@pytest.mark.parametrize("ranked", [False, True])
def test_nan_adjacency_is_reported(ranked):
    a = methods_toy_adjacency()
    a[3, 0] = np.nan
    # a valid ranking of the toy graph: tokens 9, 10 first, the logit 11 last
    rank = [1, 1, 1, 2, 1, 1, 1, 1, 1, 0, 0, 3] if ranked else None
    with pytest.raises(AttrWidgetsError, match="NaN"):
        node_influence(a, [1.0], rank=rank)
    a[3, 0] = 10.0
    np.testing.assert_allclose(node_influence(a, [1.0], rank=rank), TOY_EXPECTED, atol=1e-6)


def test_logit_weights_length_checked():
    with pytest.raises(AttrWidgetsError, match="logit_weights"):
        node_influence(methods_toy_adjacency(), np.ones(13))


def test_find_threshold_keeps_the_fraction():
    scores = np.array([5.0, 3.0, 1.0, 1.0])
    assert find_threshold(scores, 0.5) == 5.0
    assert find_threshold(scores, 0.8) == 3.0
    assert find_threshold(scores, 1.0) == 1.0


def test_prune_keeps_tokens_logits_and_drops_dangling():
    g = toy_graph(seed=1, n_layers=4, n_pos=6)
    p = g.prune(0.5, 0.9)
    kinds = g.nodes.kind[p.node_index]
    fixed = np.flatnonzero(g.nodes.mask("token", "logit"))
    assert set(fixed) <= set(p.node_index.tolist())
    assert len(p) < len(g.nodes)  # something was pruned
    has_out = np.bincount(p.edge_source, minlength=len(p)) > 0
    has_in = np.bincount(p.edge_target, minlength=len(p)) > 0
    features = kinds == KINDS.index("feature")
    errors = kinds == KINDS.index("error")
    assert (has_out & has_in)[features].all()
    assert has_out[errors].all()
    # every kept edge is an edge of the graph, with its weight, between kept nodes
    a = g.adjacency.numpy()
    np.testing.assert_array_equal(a[p.node_index[p.edge_target], p.node_index[p.edge_source]], p.edge_weight)
    assert (p.edge_weight != 0).all()


def test_prune_on_the_methods_toy_graph():
    a = methods_toy_adjacency()
    # nodes 9, 10 are the tokens, 11 the logit: the tail of the node order is [tokens][logits]
    a2 = np.zeros_like(a)
    order = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    a2[:] = a[np.ix_(order, order)]
    result = prune_masks(
        torch.from_numpy(a2), [1.0], n_tokens=2, n_logits=1, node_threshold=1.0, edge_threshold=1.0
    )
    # 2, 4, 5, 7 have no influence and no edges; 6 and 8 have no input (features need one), so they go too,
    # and then 3 keeps 0 and 1 as inputs
    kept = np.flatnonzero(result.node_mask).tolist()
    assert kept == [0, 1, 3, 9, 10, 11]
    np.testing.assert_allclose(result.influence, TOY_EXPECTED, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 3])
def test_dense_and_sparse_prune_agree(seed):
    dense = toy_graph(seed=seed, n_layers=4, n_pos=7, features_per_site=4)
    sparse = toy_graph(seed=seed, n_layers=4, n_pos=7, features_per_site=4, sparse=True)
    np.testing.assert_allclose(dense.influence, sparse.influence, rtol=1e-5, atol=1e-7)
    for thresholds in [(0.8, 0.98), (0.5, 0.7), (1.0, 1.0)]:
        a, b = dense.prune(*thresholds), sparse.prune(*thresholds)
        np.testing.assert_array_equal(a.node_index, b.node_index)
        ea = sorted(zip(a.edge_target.tolist(), a.edge_source.tolist(), a.edge_weight.tolist()))
        eb = sorted(zip(b.edge_target.tolist(), b.edge_source.tolist(), b.edge_weight.tolist()))
        assert ea == eb
        np.testing.assert_allclose(a.cumulative, b.cumulative, atol=1e-6)
    assert dense.replacement_score == pytest.approx(sparse.replacement_score, rel=1e-5)
    assert dense.completeness_score == pytest.approx(sparse.completeness_score, rel=1e-5)


def test_component_graph_prunes_and_has_no_error_nodes():
    g = toy_graph(components=True)
    assert not g.nodes.mask("error").any()
    p = g.prune()
    assert (g.nodes.kind[p.node_index] == KINDS.index("attention")).any()
    assert g.replacement_score == 1.0 and g.completeness_score == 1.0


@pytest.mark.parametrize("bad", [0, 1.5, -1, "x", float("nan")])
def test_thresholds_outside_unit_interval_rejected(bad):
    g = toy_graph()
    with pytest.raises(AttrWidgetsError, match=r"\(0, 1\]"):
        g.prune(node_threshold=bad)
    with pytest.raises(AttrWidgetsError, match=r"\(0, 1\]"):
        g.prune(edge_threshold=bad)


def test_threshold_one_keeps_every_influential_node():
    g = toy_graph(seed=2)
    p = g.prune(1.0, 1.0)
    influential = np.flatnonzero(g.influence > 0)
    dropped = set(influential.tolist()) - set(p.node_index.tolist())
    assert not dropped or all(g.nodes.kind[i] != KINDS.index("token") for i in dropped)
    assert len(p) >= len(g.prune(0.8, 0.98))


def _hand_graph(error_weight: float, feature_weight: float) -> Graph:
    """token 0 -> error -> logit, token 0 -> feature -> logit, with chosen weights."""
    nodes = NodeTable(
        ["feature", "error", "token", "logit"], [0, 0, -1, 1], [0, 0, 0, 0], [7, -1, 5, 9], n_layers=1
    )
    a = np.zeros((4, 4), dtype=np.float32)
    a[0, 2] = 1.0  # token -> feature
    a[3, 0] = feature_weight
    a[3, 1] = error_weight
    return Graph(
        nodes, torch.from_numpy(a), logit_weights=[1.0], prompt="x", tokens=["x"], token_ids=[5], n_layers=1
    )


def test_scores_on_hand_made_graphs():
    only_errors = _hand_graph(error_weight=2.0, feature_weight=0.0)
    assert only_errors.replacement_score == 0.0
    # the logit's input is all error, the feature's none: completeness 1/2
    assert only_errors.completeness_score == pytest.approx(0.5)
    no_errors = _hand_graph(error_weight=0.0, feature_weight=2.0)
    assert no_errors.replacement_score == 1.0 and no_errors.completeness_score == 1.0
    half = _hand_graph(error_weight=1.0, feature_weight=1.0)
    # I: feature 1/2, error 1/2, token 1/2 -> replacement 1/2; completeness: logit row 1/2 error, weight 1 of 2.5
    assert half.replacement_score == pytest.approx(0.5)
    assert half.completeness_score == pytest.approx(1 - 0.5 / 2.5)


def test_node_ids_follow_the_viewer_rules_and_do_not_collide():
    # a layer-0 feature 3 at position 2 and the error at layer 3, position 2: circuit-tracer 0.5 named both "0_3_2"
    nodes = NodeTable(
        ["feature", "error", "token", "logit"], [0, 3, -1, 4], [2, 2, 2, 2], [3, -1, 11, 12], n_layers=4
    )
    assert nodes.node_id == ["0_3_2", "3_-1_2", "E_11_2", "5_12_2"]
    contrast = NodeTable(["logit", "logit"], [2, 2], [4, 4], [7, 7], contrast=[-1, 8], n_layers=2)
    assert contrast.node_id == ["3_7_4", "3_7-8_4"]
    components = NodeTable(["attention", "attention", "mlp"], [1, 1, 1], [0, 0, 0], [0, 1, -1], n_layers=2)
    assert components.node_id == ["A1_0_0", "A1_1_0", "M1_0"]
    with pytest.raises(AttrWidgetsError, match="unique"):
        NodeTable(["feature", "feature"], [0, 0], [1, 1], [5, 5], n_layers=1)
    with pytest.raises(AttrWidgetsError, match="layer"):
        NodeTable(["feature"], [3], [1], [5], n_layers=2)


def test_node_table_lookup_and_records():
    g = toy_graph()
    nodes = g.nodes
    i = int(np.flatnonzero(nodes.mask("feature"))[0])
    assert nodes.index(nodes.node_id[i]) == i
    record = nodes[i]
    assert record["kind"] == "feature" and record["node_id"] == nodes.node_id[i]
    assert record["influence"] is None  # not computed yet
    assert g.influence.shape == (len(nodes),)
    assert nodes[i]["influence"] == pytest.approx(float(g.influence[i]))
    with pytest.raises(AttrWidgetsError, match="Similar ids"):
        nodes.index(nodes.node_id[i] + "9")
    assert nodes.mask("token").sum() == len(g.tokens)
    assert len(list(nodes)) == len(nodes)
    with pytest.raises(AttrWidgetsError, match="Unknown node kind"):
        nodes.mask("neuron")


def test_node_order_and_logit_weights_checked():
    nodes = NodeTable(["token", "feature", "logit"], [-1, 0, 1], [0, 1, 1], [1, 2, 3], n_layers=1)
    with pytest.raises(AttrWidgetsError, match="ordered"):
        Graph(
            nodes, torch.zeros(3, 3), logit_weights=[1.0], prompt="", tokens=["a"], token_ids=[1], n_layers=1
        )
    ok = NodeTable(["feature", "token", "logit"], [0, -1, 1], [1, 0, 1], [2, 1, 3], n_layers=1)
    with pytest.raises(AttrWidgetsError, match="logit_weights"):
        Graph(
            ok,
            torch.zeros(3, 3),
            logit_weights=[0.5, 0.5],
            prompt="",
            tokens=["a"],
            token_ids=[1],
            n_layers=1,
        )
    with pytest.raises(AttrWidgetsError, match="shape"):
        Graph(ok, torch.zeros(2, 2), logit_weights=[1.0], prompt="", tokens=["a"], token_ids=[1], n_layers=1)


def test_labels_tokens_logits_and_labeler():
    g = toy_graph()
    tokens = np.flatnonzero(g.nodes.mask("token"))
    logits = np.flatnonzero(g.nodes.mask("logit"))
    assert g.labels(tokens) == g.tokens
    assert g.labels(logits) == g.metadata["logit_tokens"]
    feature = int(np.flatnonzero(g.nodes.mask("feature"))[0])
    calls = []
    labeler = g.labeler
    g.labeler = lambda idx: calls.append(list(idx)) or labeler(idx)
    assert g.labels([feature, feature])[0].startswith("feature L")
    g.labels([feature])
    assert calls == [[feature]]  # cached after the first call
    bare = toy_graph(labeled=False)
    assert bare.labels([feature]) == [""]  # no labeler: empty, never an error


def test_viewer_json_ids_links_and_pins(tmp_path):
    g = toy_graph(seed=4, n_layers=3, n_pos=6)
    p = g.prune()
    pinned = [g.nodes.node_id[i] for i in p.node_index[:2]]
    out = tmp_path / "graph.json"
    doc = g.to_viewer_json(out, pinned=pinned, slug="toy")
    assert json.loads(out.read_text()) == doc
    ids = [n["node_id"] for n in doc["nodes"]]
    assert len(ids) == len(set(ids))
    for node in doc["nodes"]:
        assert re.fullmatch(ID_RULES[node["feature_type"]], node["node_id"]), node
    present = set(ids)
    assert all(link["source"] in present and link["target"] in present for link in doc["links"])
    assert doc["qParams"]["pinnedIds"] == pinned
    assert doc["metadata"]["slug"] == "toy" and doc["metadata"]["prompt_tokens"] == g.tokens
    assert sum(n["is_target_logit"] for n in doc["nodes"]) == 1
    assert sum(n["feature_type"] == "embedding" for n in doc["nodes"]) == len(g.tokens)
    assert {n["layer"] for n in doc["nodes"] if n["feature_type"] == "embedding"} == {"E"}
    with pytest.raises(AttrWidgetsError, match="No node"):
        g.to_viewer_json(pinned=["99_1_1"])


def test_pinned_node_outside_the_pruned_graph_is_kept_in_json():
    g = toy_graph(seed=5, n_layers=4, n_pos=6)
    p = g.prune(0.3, 0.5)
    dropped = sorted(set(np.flatnonzero(g.nodes.mask("feature")).tolist()) - set(p.node_index.tolist()))
    node_id = g.nodes.node_id[dropped[0]]
    doc = g.to_viewer_json(node_threshold=0.3, edge_threshold=0.5, pinned=[node_id])
    assert node_id in {n["node_id"] for n in doc["nodes"]}
    assert doc["qParams"]["pinnedIds"] == [node_id]


def test_component_graph_viewer_json():
    g = toy_graph(components=True, seed=1)
    doc = g.to_viewer_json()
    types = {n["feature_type"] for n in doc["nodes"]}
    assert {"attention head", "embedding", "logit"} <= types
    for node in doc["nodes"]:
        assert re.fullmatch(ID_RULES[node["feature_type"]], node["node_id"]), node


@pytest.mark.parametrize("sparse", [False, True])
def test_save_load_round_trip(tmp_path, sparse):
    g = toy_graph(seed=6, sparse=sparse)
    g.labels(np.flatnonzero(g.nodes.mask("feature"))[:3])
    document = g.to_viewer_json()  # labels every kept node; the loaded graph has no labeler but keeps them
    g.save(tmp_path / "g")
    h = load_graph(tmp_path / "g.json")
    assert h.engine is None and h.labeler is None
    if sparse:
        assert sp.issparse(h.adjacency) and (h.adjacency != g.adjacency).nnz == 0
    else:
        assert torch.equal(h.adjacency, g.adjacency)
    for name in ("kind", "layer", "position", "feature", "contrast"):
        np.testing.assert_array_equal(getattr(h.nodes, name), getattr(g.nodes, name))
    np.testing.assert_array_equal(h.nodes.activation, g.nodes.activation)
    assert h.nodes.node_id == g.nodes.node_id and h.nodes.label == g.nodes.label
    np.testing.assert_array_equal(h.influence, g.influence)
    np.testing.assert_array_equal(h.logit_weights, g.logit_weights)
    assert (h.prompt, h.tokens, h.token_ids, h.n_layers, h.metadata) == (
        g.prompt,
        g.tokens,
        g.token_ids,
        g.n_layers,
        g.metadata,
    )
    assert h.to_viewer_json() == document
    # Re-attaching a model runs the engine (tests/core/test_graph_engine.py); something else is refused.
    with pytest.raises(AttrWidgetsError, match="ModelHandle"):
        load_graph(tmp_path / "g", model=object())


def test_malformed_graph_files(tmp_path):
    g = toy_graph()
    path = g.save(tmp_path / "g")
    tensors = path.with_suffix(".safetensors")
    good_header = path.read_text()

    path.write_text("{not json")
    with pytest.raises(AttrWidgetsError, match="not valid JSON"):
        load_graph(path)
    path.write_text(good_header.replace('"attrwidgets.graph"', '"attrwidgets.lig"'))
    with pytest.raises(AttrWidgetsError, match="schema"):
        load_graph(path)
    path.write_text(good_header.replace('"schema_version": 1', '"schema_version": 99'))
    with pytest.raises(AttrWidgetsError, match="version 99"):
        load_graph(path)
    path.write_text(good_header)
    blob = tensors.read_bytes()
    tensors.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(AttrWidgetsError, match="safetensors"):
        load_graph(path)
    tensors.unlink()
    with pytest.raises(AttrWidgetsError, match="missing"):
        load_graph(path)
    with pytest.raises(AttrWidgetsError, match="no such file"):
        load_graph(tmp_path / "absent")


def test_metadata_must_be_json_able(tmp_path):
    g = toy_graph()
    g.metadata["bad"] = object()
    with pytest.raises(AttrWidgetsError, match="JSON"):
        g.save(tmp_path / "g")


def test_intervene_and_rebuild_need_an_engine(tmp_path):
    g = toy_graph()
    for call in (lambda: g.intervene({g.nodes.node_id[0]: 0.0}), lambda: g.rebuild(max_logits=2)):
        with pytest.raises(AttrWidgetsError, match="no model attached"):
            call()

    class Engine:
        def intervene(self, graph, interventions, frozen, **kw):
            return ("intervened", frozen, kw)

        def rebuild(self, graph, **changes):
            return ("rebuilt", changes)

    g.engine = Engine()
    assert g.intervene({}, frozen=False, top_k=3) == ("intervened", False, {"top_k": 3})
    assert g.rebuild(targets=[1]) == ("rebuilt", {"targets": [1]})


def _reference_prune(a, w, n_features, n_fixed, node_threshold, edge_threshold):
    """circuit-tracer's prune_graph, restated densely in numpy (float64) as the oracle."""

    def normalized(m):
        m = np.abs(m)
        return m / np.maximum(m.sum(1, keepdims=True), 1e-10)

    def series(m, weights):
        current = weights @ m
        total = current.copy()
        while current.any():
            current = current @ m
            total += current
        return total

    def threshold(scores, fraction):
        ordered = np.sort(scores)[::-1]
        cumulative = np.cumsum(ordered) / ordered.sum()
        return ordered[min(int(np.searchsorted(cumulative, fraction)), ordered.size - 1)]

    a = a.astype(np.float64)
    influence = series(normalized(a), w)
    node_mask = influence >= threshold(influence, node_threshold)
    node_mask[-n_fixed:] = True
    pruned = a.copy()
    pruned[~node_mask] = 0
    pruned[:, ~node_mask] = 0
    scores = normalized(pruned) * (series(normalized(pruned), w) + w)[:, None]
    edge_mask = scores >= threshold(scores.ravel(), edge_threshold)
    while True:
        before = node_mask.copy()
        edge_mask[~node_mask] = False
        edge_mask[:, ~node_mask] = False
        node_mask[:-n_fixed] &= edge_mask[:, :-n_fixed].any(0)
        node_mask[:n_features] &= edge_mask[:n_features].any(1)
        if (node_mask == before).all():
            break
    return node_mask, edge_mask


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("thresholds", [(0.8, 0.98), (0.5, 0.7)])
def test_prune_matches_the_upstream_algorithm(seed, thresholds):
    g = toy_graph(seed=seed, n_layers=4, n_pos=6, features_per_site=4)
    a = g.adjacency.numpy()
    w = np.zeros(len(g.nodes))
    w[-g.n_logits :] = g.logit_weights
    n_features = int(g.nodes.mask("feature").sum())
    node_mask, edge_mask = _reference_prune(a, w, n_features, g.n_tokens + g.n_logits, *thresholds)
    p = g.prune(*thresholds)
    np.testing.assert_array_equal(p.node_index, np.flatnonzero(node_mask))
    targets, sources = np.nonzero(edge_mask)
    got = sorted(zip(p.node_index[p.edge_target].tolist(), p.node_index[p.edge_source].tolist()))
    assert got == sorted(zip(targets.tolist(), sources.tolist()))


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("components", [False, True])
def test_one_pass_ranked_influence_equals_the_series(components, sparse, monkeypatch):
    import attrwidgets.core.graph.influence as inf

    g = toy_graph(seed=7, n_layers=5, n_pos=6, components=components)
    store = sp.csr_array if sparse else torch.as_tensor
    dense = g.adjacency.numpy()
    weights = inf.full_weights(g.logit_weights, len(g.nodes))

    def series(a):
        return np.asarray(original(inf._Operator(store(a)), weights, len(g.nodes), None), dtype=np.float32)

    original = inf._series
    calls = []
    monkeypatch.setattr(inf, "_series", lambda *a: calls.append(1) or original(*a))
    ranked = np.asarray(inf.node_influence(store(dense), g.logit_weights, rank=g.rank))
    assert not calls  # the one-pass solve was used
    np.testing.assert_allclose(ranked, series(dense), rtol=1e-5, atol=1e-7)
    # an edge against the ranking but no cycle (layer 3, position 1 -> layer 1, last position): detected, the
    # series takes over
    nodes = g.nodes
    kind = "attention" if components else "feature"
    low = int(np.flatnonzero((nodes.layer == 1) & (nodes.position == 5) & nodes.mask(kind))[0])
    high = int(np.flatnonzero((nodes.layer == 3) & (nodes.position == 1) & nodes.mask(kind))[0])
    bent = dense.copy()
    bent[low, high] = 5.0
    got = np.asarray(inf.node_influence(store(bent), g.logit_weights, rank=g.rank))
    assert calls
    np.testing.assert_allclose(got, series(bent), rtol=1e-6)
    assert not np.allclose(got, ranked)


@pytest.mark.parametrize("fraction", [0.5, 0.8, 0.98, 1.0])
def test_binned_threshold_equals_the_sorted_rule(fraction):
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.lognormal(0, 3, size=300_000), np.zeros(1000)])
    ordered = np.sort(scores)[::-1]
    cumulative = np.cumsum(ordered) / ordered.sum()
    expected = ordered[min(int(np.searchsorted(cumulative, fraction)), ordered.size - 1)]
    got = find_threshold(scores, fraction)
    if fraction < 1.0:
        assert got == expected
    else:  # 1.0 keeps every positive score (upstream's float cumsum may stop short of a negligible tail)
        assert got == scores[scores > 0].min()
    assert find_threshold(scores[:1000], fraction) == find_threshold(np.sort(scores[:1000]), fraction)


def _big_sparse_graph(n_layers=6, n_pos=40, per_site=120, fan_in=8, seed=0) -> Graph:
    """~28000 nodes, ~230k edges (layer-causal): a dense copy would be 3 GB."""
    rng = np.random.default_rng(seed)
    layer = np.repeat(np.arange(n_layers), (n_pos - 1) * per_site)
    position = np.tile(np.repeat(np.arange(1, n_pos), per_site), n_layers)
    feature = np.tile(np.arange(per_site), n_layers * (n_pos - 1))
    n_feat, n_err = layer.size, n_layers * (n_pos - 1)
    kinds = ["feature"] * n_feat + ["error"] * n_err + ["token"] * n_pos + ["logit"] * 5
    err_layer = np.repeat(np.arange(n_layers), n_pos - 1)
    nodes = NodeTable(
        kinds,
        np.concatenate([layer, err_layer, np.full(n_pos, -1), np.full(5, n_layers)]),
        np.concatenate(
            [position, np.tile(np.arange(1, n_pos), n_layers), np.arange(n_pos), np.full(5, n_pos - 1)]
        ),
        np.concatenate([feature, np.full(n_err, -1), np.arange(n_pos), np.arange(5)]),
        n_layers=n_layers,
    )
    n = len(nodes)
    source_layer = np.concatenate([layer, err_layer, np.full(n_pos, -1)])  # every possible source
    order = np.argsort(source_layer, kind="stable")
    below = np.searchsorted(source_layer[order], np.arange(n_layers + 1))  # sources strictly below each layer
    targets = np.concatenate([np.arange(n_feat), np.arange(n - 5, n)])
    t_layer = np.concatenate([layer, np.full(5, n_layers)])
    rows = np.repeat(targets, fan_in)
    cols = order[(rng.random(rows.size) * below[np.repeat(t_layer, fan_in)]).astype(np.int64)]
    a = sp.csr_array((rng.normal(size=rows.size).astype(np.float32), (rows, cols)), shape=(n, n))
    return Graph(
        nodes, a, logit_weights=[0.5, 0.2, 0.1, 0.05, 0.05], prompt="p", tokens=["t"] * n_pos,
        token_ids=list(range(n_pos)), n_layers=n_layers,
    )  # fmt: skip


def test_big_sparse_graph_never_densified(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a sparse adjacency was densified")

    for cls in (sp.csr_array, sp.csc_array, sp.coo_array, sp.csr_matrix):
        monkeypatch.setattr(cls, "toarray", refuse)
        monkeypatch.setattr(cls, "todense", refuse)
    g = _big_sparse_graph()
    assert len(g.nodes) > 20000
    p = g.prune()
    assert set(np.flatnonzero(g.nodes.mask("token", "logit"))) <= set(p.node_index.tolist())
    assert 0 < len(p) < len(g.nodes) and p.edge_weight.size > 0
    assert 0 < g.replacement_score < 1 and 0 < g.completeness_score < 1
    # every feature has inputs, so all of the logits' weight (0.9) ends in the leaves: tokens and errors
    leaves = g.nodes.mask("token", "error")
    assert g.influence[leaves].sum() == pytest.approx(0.9, rel=1e-4)
