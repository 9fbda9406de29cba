"""Attribution graphs on the real default model (SmolLM2-135M-Instruct): the component graph is exact, and a
transcoder graph equals circuit-tracer 0.5's own adjacency (tests/core/data/graph_ct_smollm2.npz, written by
benchmarks/graph_ct_fixture.py in circuit-tracer's venv) on the same random PLT, regenerated here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import attrwidgets as aw

pytestmark = pytest.mark.real_model
REPO = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "data" / "graph_ct_smollm2.npz"


def _load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_component_graph_on_smollm2_is_exact(real_model):
    graph = aw.attribution_graph(real_model, "The capital of France is", progress=False)
    A = graph.adjacency.numpy()
    logits = np.flatnonzero(graph.nodes.mask("logit"))
    # Every write at the last position is a node (position >= 1), so a logit row adds up to its demeaned logit.
    np.testing.assert_allclose(A[logits].sum(1), graph.nodes.activation[logits], rtol=1e-4, atol=1e-3)
    assert graph.replacement_score == pytest.approx(1.0)
    pruned = graph.prune()
    kept = set(pruned.node_index.tolist())
    assert set(np.flatnonzero(graph.nodes.mask("token", "logit")).tolist()) <= kept
    assert all(graph.labels(pruned.node_index[:5]))
    same = graph.intervene({graph.nodes.node_id[0]: float(graph.nodes.activation[0])}, frozen=False)
    assert max(abs(r["prob"] - r["clean_prob"]) for r in same) < 1e-5


def test_transcoder_graph_equals_circuit_tracer(real_model, tmp_path):
    ref = np.load(FIXTURE, allow_pickle=False)
    fixture = _load_benchmark("graph_ct_fixture")
    plt = tmp_path / "plt"
    fixture.write_plt(str(plt))
    graph = aw.attribution_graph(real_model, ref["input_ids"].tolist(), transcoder=aw.load_transcoder(plt),
                                 progress=False)
    nodes = graph.nodes
    assert nodes.feature[nodes.mask("logit")].tolist() == ref["logit_ids"].tolist()

    def key(kind, layer, pos, feature):
        kind = str(kind)
        return (kind, int(layer) if kind in ("feature", "error") else 0, int(pos),
                int(feature) if kind in ("feature", "token", "logit") else 0)

    ours = {key(nodes[i]["kind"], nodes.layer[i], nodes.position[i], nodes.feature[i]): i for i in range(len(nodes))}
    theirs = [key(*values) for values in zip(ref["node_kind"], ref["node_layer"], ref["node_position"],
                                              ref["node_feature"])]
    # circuit-tracer also lists error nodes at position 0, with empty columns; every other node is in both graphs.
    matched = np.array([ours.get(k, -1) for k in theirs])
    assert all(k[0] == "error" and k[2] == 0 for k, m in zip(theirs, matched) if m < 0)
    assert len(ours) == int((matched >= 0).sum())
    A = graph.adjacency.numpy()
    cols = matched >= 0
    scale = np.abs(ref["adjacency_rows"]).max()
    for row, theirs_row in zip(ref["rows"], ref["adjacency_rows"]):
        mine = A[matched[row]][matched[cols]]
        np.testing.assert_allclose(mine, theirs_row[cols], atol=2e-6 * scale, rtol=0)
        assert not theirs_row[~cols].any()
    assert torch.is_tensor(graph.adjacency)
