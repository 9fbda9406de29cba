"""graph.intervene: reproduces the prompt when nothing changes, moves the output when a node is ablated, and in
the frozen component model (linear) moves each logit by exactly the graph's total effect."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attrwidgets as aw
from attrwidgets.core.graph.intervene import _frozen_logits, _Interventions, _parse
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import tiny_handle
from tests.core.graph_reference import random_transcoder

PROMPT = "The capital of France is"


def _graph(arch="llama", transcoder=None):
    handle = tiny_handle(arch)
    cfg = handle.model.config
    tc = None if transcoder is None else random_transcoder(cfg.num_hidden_layers, cfg.hidden_size, kind=transcoder,
                                                           skip=transcoder == "plt")
    return aw.attribution_graph(handle, PROMPT, transcoder=tc, progress=False)


@pytest.mark.parametrize("arch", ["llama", "gemma2", "olmo2", "gpt_neox"])
@pytest.mark.parametrize("transcoder", [None, "plt", "clt"])
@pytest.mark.parametrize("frozen", [True, False])
def test_unchanged_values_reproduce_the_prompt_and_ablation_moves_it(arch, transcoder, frozen):
    graph = _graph(arch, transcoder=transcoder)
    settable = graph.nodes.mask("feature", "attention", "mlp")
    strongest = int(np.argmax(np.where(settable, np.nan_to_num(graph.influence), -1)))
    node = graph.nodes.node_id[strongest]
    same = graph.intervene({node: float(graph.nodes.activation[strongest])}, frozen=frozen)
    assert max(abs(r["prob"] - r["clean_prob"]) for r in same) < 1e-6
    ablated = graph.intervene({node: 0.0}, frozen=frozen)
    assert max(abs(r["logit"] - r["clean_logit"]) for r in ablated) > 1e-4


@pytest.mark.parametrize("arch", ["llama", "gpt2", "phi3", "gemma2", "gemma3", "olmo2", "gpt_neox"])
def test_frozen_component_ablation_equals_the_total_effect_through_the_graph(arch):
    graph = _graph(arch)
    A = graph.adjacency.numpy().astype(np.float64)
    comps = np.flatnonzero(graph.nodes.mask("attention") | graph.nodes.mask("mlp"))
    logits = np.flatnonzero(graph.nodes.mask("logit"))
    a = graph.nodes.activation[comps].astype(np.float64)
    B = A[np.ix_(comps, comps)] / a  # per unit of each source's scalar
    k = int(np.argmax(np.abs(A[logits[0], comps])))
    B[k] = 0  # the forced node is not recomputed
    delta = np.linalg.solve(np.eye(len(comps)) - B, np.eye(len(comps))[k] * -a[k])
    expected = (A[np.ix_(logits, comps)] / a) @ delta
    rep = graph.engine.replacement
    iv = _Interventions(rep, _parse(graph, {graph.nodes.node_id[comps[k]]: 0.0}))
    with torch.no_grad():
        new = _frozen_logits(rep, iv).double()
        clean = _frozen_logits(rep, _Interventions(rep, {})).double()
    # Demeaned logit changes (the graph's logit rows measure the demeaned logit).
    got = (new - clean)[graph.nodes.feature[logits]] - (new - clean).mean()
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5 * max(1.0, np.abs(expected).max()))
    assert np.abs(expected).max() > 1e-3  # the ablation moves the logits: a real check, not 0 == 0


def test_bad_interventions():
    graph = _graph()
    with pytest.raises(AttrWidgetsError, match="non-empty dict"):
        graph.intervene({})
    with pytest.raises(AttrWidgetsError, match="token node"):
        graph.intervene({graph.nodes.node_id[int(np.flatnonzero(graph.nodes.mask("token"))[0])]: 0.0})
    with pytest.raises(AttrWidgetsError, match="must be a finite number"):
        graph.intervene({graph.nodes.node_id[0]: "zero"})
    with pytest.raises(AttrWidgetsError, match="No node 'no_such_node' in this graph. Ids: token E_"):
        graph.intervene({"no_such_node": 0.0})
