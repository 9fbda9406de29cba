"""Attribution graphs on tiny random models (docs/methods/graph.md): linearity against an independent forward of
the frozen replacement model, exact reproduction of the prompt, causality, target selection, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attrwidgets as aw
from attrwidgets.core.frozen import FrozenForward
from attrwidgets.core.graph.component_graph import ComponentReplacement
from attrwidgets.core.graph.graph import KINDS
from attrwidgets.core.graph.rows import RowBuilder
from attrwidgets.core.graph.transcoder_graph import TranscoderReplacement
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import tiny_handle
from tests.core.graph_reference import (
    component_forward,
    component_writes,
    random_transcoder,
    source_writes,
    transcoder_forward,
)

IDS = torch.tensor([1, 5, 9, 12, 7, 3, 8])


def _dims(handle):
    cfg = handle.model.config
    return cfg.num_hidden_layers, cfg.hidden_size


def _rows(rep, directions):
    """Every candidate's row (in column order) and the logit rows."""
    rows, order = RowBuilder(rep, batch_size=16, progress=False, cancel=None).build(
        directions, torch.full((len(directions),), 0.5), None)
    feature_rows = torch.zeros(rep.n_target_candidates, rep.n_columns)
    feature_rows[order] = rows[len(directions):]
    return feature_rows, rows[: len(directions)]


def _logit_directions(frozen, ids=(3, 4)):
    unembed = frozen.unembedding().weight
    return unembed[list(ids)] - unembed.mean(0)


def _check_linearity(rep, forward, writes_of, directions):
    feature_rows, logit_rows = _rows(rep, directions)
    base_values, base_logits = forward(rep, directions)
    scale = max(1.0, float(feature_rows.abs().max()))
    # Every kind of source, spread over layers and positions (every column would repeat the same check).
    columns = sorted(set(range(0, rep.n_columns, max(1, rep.n_columns // 24))) | set(range(rep.n_columns - 3, rep.n_columns)))
    for column in columns:
        values, logits = forward(rep, directions, writes_of(rep, column))
        torch.testing.assert_close(values - base_values, feature_rows[:, column], atol=2e-6 * scale, rtol=0)
        torch.testing.assert_close(logits - base_logits, logit_rows[:, column], atol=1e-5, rtol=0)
    return feature_rows, logit_rows


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("kind,skip", [("plt", False), ("plt", True), ("clt", False)])
def test_transcoder_graph_is_linear_and_reproduces_the_prompt(arch, kind, skip):
    handle = tiny_handle(arch)
    frozen = FrozenForward(handle, IDS)
    rep = TranscoderReplacement(frozen, random_transcoder(*_dims(handle), kind=kind, skip=skip))
    directions = _logit_directions(frozen)
    feature_rows, logit_rows = _check_linearity(rep, transcoder_forward, source_writes, directions)
    assert feature_rows.abs().max() > 0 and logit_rows.abs().max() > 0
    # The replacement model reproduces the real model on the prompt: pre-activations and logits.
    values, logits = transcoder_forward(rep, directions)
    torch.testing.assert_close(values, rep.target_values(torch.arange(rep.n_target_candidates)), atol=1e-4, rtol=1e-5)
    with torch.no_grad():
        real = handle.model(input_ids=IDS.unsqueeze(0)).logits[0, -1]
    torch.testing.assert_close(logits, real[[3, 4]] - real.mean(), atol=1e-5, rtol=1e-5)
    # In-edges plus the constant part (a forward with every source removed) add up to each target exactly.
    all_sources = [(layer, site, pos, -v) for c in range(rep.n_columns) for layer, site, pos, v in source_writes(rep, c)]
    const_values, const_logits = transcoder_forward(rep, directions, all_sources)
    scale = float(feature_rows.abs().max())  # tiny random models have rows in the thousands: fp32 noise scales
    torch.testing.assert_close(const_values + feature_rows.sum(1), values, atol=1e-6 * scale, rtol=1e-5)
    torch.testing.assert_close(const_logits + logit_rows.sum(1), logits, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "olmo2", "gpt_neox"])
def test_component_graph_is_linear_and_exact(arch):
    handle = tiny_handle(arch)
    frozen = FrozenForward(handle, IDS[:6])
    rep = ComponentReplacement(frozen)
    directions = _logit_directions(frozen)
    feature_rows, _logit_rows = _check_linearity(rep, component_forward, component_writes, directions)
    values, _ = component_forward(rep, directions)
    torch.testing.assert_close(values, rep.target_values(torch.arange(rep.n_target_candidates)), atol=1e-6, rtol=1e-5)
    assert feature_rows.abs().max() > 0


def _edges(graph):
    A = graph.adjacency
    A = A.toarray() if hasattr(A, "toarray") else A.numpy()
    return A, np.nonzero(A)


@pytest.mark.parametrize("transcoder", [None, "plt", "clt"])
def test_no_edge_runs_backward_and_position_zero_has_no_nodes(transcoder):
    handle = tiny_handle("llama")
    tc = None if transcoder is None else random_transcoder(*_dims(handle), kind=transcoder)
    graph = aw.attribution_graph(handle, "The capital of France is", transcoder=tc, progress=False)
    nodes = graph.nodes
    A, (targets, sources) = _edges(graph)
    assert len(targets) > 0
    assert np.all(nodes.position[sources] <= nodes.position[targets])
    inner = np.array([KINDS[k] not in ("token",) for k in nodes.kind[sources]])
    layer_order = nodes.layer[sources[inner]] < nodes.layer[targets[inner]]
    same_layer_head_to_mlp = ((nodes.layer[sources[inner]] == nodes.layer[targets[inner]])
                              & (nodes.kind[sources[inner]] == KINDS.index("attention"))
                              & (nodes.kind[targets[inner]] == KINDS.index("mlp")))
    assert np.all(layer_order | same_layer_head_to_mlp)
    not_token_or_logit = ~np.isin(nodes.kind, [KINDS.index("token"), KINDS.index("logit")])
    assert np.all(nodes.position[not_token_or_logit] >= 1)
    # Tokens and errors are never targets: their rows are empty.
    for kind in ("token", "error"):
        assert not A[nodes.mask(kind)].any()


def test_bos_is_prepended_unless_special_and_ids_are_used_as_is():
    handle = tiny_handle("llama")
    graph = aw.attribution_graph(handle, "The capital", progress=False)
    first = graph.token_ids[0]
    assert first in handle.tokenizer.all_special_ids
    plain = handle.tokenizer("The capital", add_special_tokens=False)["input_ids"]
    assert graph.token_ids[1:] == plain
    as_is = aw.attribution_graph(handle, plain, progress=False)
    assert as_is.token_ids == plain


def test_contrast_target_row_is_the_difference_of_the_token_rows():
    handle = tiny_handle("llama")
    tc = random_transcoder(*_dims(handle))
    graph = aw.attribution_graph(handle, "The capital of France is", transcoder=tc, progress=False,
                                 targets=[" Paris", 72, (" Paris", "#72")])
    A, _ = _edges(graph)
    logits = np.flatnonzero(graph.nodes.mask("logit"))
    np.testing.assert_allclose(A[logits[2]], A[logits[0]] - A[logits[1]], atol=1e-4 * max(1, np.abs(A).max()))
    assert graph.nodes[logits[2]]["node_id"] != graph.nodes[logits[0]]["node_id"]
    assert graph.metadata["logit_tokens"][2].endswith(" - " + graph.metadata["logit_tokens"][1])


@pytest.mark.parametrize("max_logits, logit_prob, expected_count", [
    (3, 0.95, 3),  # a random model's next-token distribution is flat: the cap binds
    (40, None, None),  # the cut binds: logit_prob is set just above the mass of the top 5 (from the model)
    (3, 1e-9, 1),  # the first token alone covers any tiny mass
])
def test_default_logits_cover_the_probability_mass_with_the_fewest_tokens(max_logits, logit_prob, expected_count):
    """The logits are the fewest most probable tokens whose probabilities reach logit_prob, at most max_logits
    of them; checked against the model's own softmax at the last position, in both regimes (cut and cap)."""
    handle = tiny_handle("llama")
    ids = handle.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(handle.model(input_ids=ids).logits[0, -1].double(), -1)
    top = probs.sort(descending=True)
    if logit_prob is None:
        logit_prob, expected_count = float(top.values[:5].sum() + top.values[5] / 2), 6
    graph = aw.attribution_graph(handle, ids[0].tolist(), progress=False, max_logits=max_logits,
                                 logit_prob=logit_prob)
    got = np.array(graph.metadata["logit_probabilities"])
    assert len(got) == expected_count
    logits = graph.nodes.feature[graph.nodes.mask("logit")]
    assert logits.tolist() == top.indices[:expected_count].tolist()
    np.testing.assert_allclose(got, top.values[:expected_count].numpy(), rtol=1e-4)
    if expected_count < max_logits:  # the cut: reached with these tokens, not with one fewer
        assert got.sum() >= logit_prob * (1 - 1e-5) and got[:-1].sum() < logit_prob


def test_max_feature_nodes_keeps_the_influential_ones_with_the_same_rows():
    handle = tiny_handle("llama")
    tc = random_transcoder(*_dims(handle))
    full = aw.attribution_graph(handle, "The capital of France is", transcoder=tc, progress=False)
    part = aw.attribution_graph(handle, "The capital of France is", transcoder=tc, progress=False,
                                max_feature_nodes=20)
    n_features = int(part.nodes.mask("feature").sum())
    assert n_features == 20 < int(full.nodes.mask("feature").sum())
    index = [full.nodes.index(i) for i in part.nodes.node_id]
    A_full, _ = _edges(full)
    A_part, _ = _edges(part)
    np.testing.assert_allclose(A_part[:n_features], A_full[np.ix_(index[:n_features], index)], rtol=1e-5, atol=1e-5)
    top = np.argsort(-full.influence[: int(full.nodes.mask("feature").sum())])[:5]
    kept = set(part.nodes.node_id)
    assert sum(full.nodes.node_id[i] in kept for i in top) >= 4


def test_bad_input_says_what_to_fix():
    handle = tiny_handle("llama")
    L, D = _dims(handle)
    with pytest.raises(AttrWidgetsError, match="empty"):
        aw.attribution_graph(handle, "   ", progress=False)
    with pytest.raises(AttrWidgetsError, match="context"):
        aw.attribution_graph(handle, [1] * (handle.max_context + 1), progress=False)
    with pytest.raises(AttrWidgetsError, match="d_model"):
        aw.attribution_graph(handle, "The cat", transcoder=random_transcoder(L, D + 2), progress=False)
    with pytest.raises(AttrWidgetsError, match="layers"):
        aw.attribution_graph(handle, "The cat", transcoder=random_transcoder(L + 1, D), progress=False)
    for kwargs, match in [({"max_logits": 0}, "max_logits"), ({"logit_prob": 0}, r"\(0, 1\]"),
                          ({"logit_prob": 1.5}, r"\(0, 1\]"), ({"max_feature_nodes": 0}, "max_feature_nodes"),
                          ({"batch_size": -1}, "batch_size"), ({"targets": [(" Paris", " Paris")]}, "itself"),
                          ({"targets": ["Paris is"]}, "single token"), ({"targets": []}, "non-empty")]:
        with pytest.raises(AttrWidgetsError, match=match):
            aw.attribution_graph(handle, "The capital of France is", progress=False, **kwargs)
    with pytest.raises(AttrWidgetsError, match="memory budget.*max_feature_nodes="):
        aw.attribution_graph(handle, "The capital of France is", progress=False, memory_budget=1000)
    with pytest.raises(AttrWidgetsError, match="supports causal LMs"):
        aw.attribution_graph(tiny_handle("bert"), "The cat sat", progress=False)


def test_a_saved_graph_reattaches_to_its_model_only(tmp_path):
    handle = tiny_handle("llama")
    tc = random_transcoder(*_dims(handle))
    graph = aw.attribution_graph(handle, "The capital of France is", transcoder=tc, progress=False,
                                 targets=[" Paris", (" Paris", 72)])
    path = graph.save(tmp_path / "g.json")
    with pytest.raises(AttrWidgetsError, match="transcoder"):
        aw.load_graph(path, model=handle)
    with pytest.raises(AttrWidgetsError, match="another model"):
        aw.load_graph(path, model=tiny_handle("llama", seed=1), transcoder=tc)
    back = aw.load_graph(path, model=handle, transcoder=tc)
    assert back.labels([0]) == graph.labels([0])
    assert back.intervene({back.nodes.node_id[0]: 0.0}) == graph.intervene({graph.nodes.node_id[0]: 0.0})
    again = back.rebuild()
    np.testing.assert_allclose(again.adjacency.numpy(), graph.adjacency.numpy(), atol=1e-5)
