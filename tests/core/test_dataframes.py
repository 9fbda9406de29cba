"""result.to_dataframe() for every result type: long format, one row per score, named columns, and the
numbers of the result itself (each table is checked against the arrays it comes from, and against a property
of the method where a sum has one)."""

from __future__ import annotations

import numpy as np
import pytest

import attrwidgets as aw
from attrwidgets.testing import tiny_handle, tiny_masked_lm

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def handle():
    return tiny_handle("llama")


def test_decomposition_rows_sum_to_the_real_logit(handle):
    d = aw.depass(handle, PROMPT, progress=False)
    token = int(handle.tokenizer(" Paris", add_special_tokens=False)["input_ids"][0])
    df = d.to_dataframe(token)
    T, M = len(d.tokens), len(d.components)
    assert list(df.columns) == ["position", "token", "component", "component_index", "score"] and len(df) == T * M
    np.testing.assert_allclose(df.groupby("position").score.sum().to_numpy(), d.logit_scores(token).sum(1), rtol=1e-6)
    norms = d.to_dataframe()  # without a token: the norm of each component's state
    np.testing.assert_allclose(norms.score.to_numpy().reshape(T, M), np.linalg.norm(d.states, axis=-1), rtol=1e-6)
    assert (norms.component.to_numpy().reshape(T, M)[:, -1] == "bias").all()


def test_head_contributions_each_layer_sums_to_the_logit(handle):
    r = aw.head_contributions(handle, PROMPT, progress=False)
    df = r.to_dataframe()
    L, H = r.contributions.shape
    assert len(df) == L * H + 2 * L and set(df.part) == {"head", "stream", "bias"}
    per_layer = df.groupby("layer").score.sum().to_numpy()
    np.testing.assert_allclose(per_layer, r.logit, rtol=1e-4, atol=1e-4 * abs(r.logit))
    heads = df[df.part == "head"]
    np.testing.assert_array_equal(heads.score.to_numpy().reshape(L, H), r.contributions)


def test_layer_attribution_keeps_only_computed_scores(handle):
    r = aw.lig(handle, PROMPT, layers=[1], target_tokens=[2, 4], n_steps=4)
    df = r.to_dataframe()
    assert set(df.route) == {"layer", "att", "mlp"} and set(df.target_position) == {2, 4}
    layer = df[df.route == "layer"]
    cols = r.route("layer", 1)
    for (target, source), score in zip(layer[["target_position", "source_position"]].to_numpy(), layer.score):
        assert score == cols.scores[target, source]
    assert (df[df.route == "mlp"].source_token == "").all() and (df[df.route == "att"]["head"] >= 0).all()
    assert len(layer) == np.isfinite(cols.scores).sum()


def test_diffusion_rows_are_the_score_rows():
    r = aw.dlig(tiny_masked_lm(), PROMPT, gen_length=4, denoising_steps=2, n_steps=4, progress=False)
    df = r.to_dataframe()
    assert len(df) == np.isfinite(r.scores).sum()
    first = df[(df.step == r.row_step[0]) & (df.target_position == r.row_position[0])]
    np.testing.assert_array_equal(first.score.to_numpy(), r.scores[0][np.isfinite(r.scores[0])])


@pytest.mark.parametrize("storage", ["dense", "sparse"])
def test_graph_rows_are_its_edges(handle, storage):
    g = aw.attribution_graph(handle, PROMPT, progress=False)
    if storage == "sparse":
        import scipy.sparse as sp

        g.adjacency = sp.csr_array(g.adjacency.numpy())
    df = g.to_dataframe()
    dense = g.adjacency.toarray() if storage == "sparse" else g.adjacency.numpy()
    assert len(df) == np.count_nonzero(dense)
    index = {node: i for i, node in enumerate(g.nodes.node_id)}
    row = df.iloc[len(df) // 2]
    assert row.weight == np.float32(dense[index[row.target], index[row.source]])
