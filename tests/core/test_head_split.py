"""A head's DePass contribution split by source token (core/depass/head_split.py): what the Explorer's matrix
shows when a head is clicked in the grid."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from attrwidgets.core.depass.head_split import head_split_at
from attrwidgets.core.depass.heads import HeadSession
from attrwidgets.core.depass.rules import MLP_RULES
from attrwidgets.core.forward import ComputationCancelled
from attrwidgets.errors import AttrWidgetsError

from .test_depass import PROMPT, biased

EXACT = 1e-4  # docs/methods/depass.md: fp32, relative to the logit's scale


def tolerance(session: HeadSession, row: int) -> float:
    logits = session.frozen.real_logits(session.query_positions[row])
    return EXACT * max(1.0, float(logits.abs().max()))


@pytest.mark.parametrize("arch", ("llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "olmo2", "gpt_neox", "gpt2", "mistral"))
def test_sources_sum_to_the_heads_contribution_in_the_grid(arch):
    s = HeadSession(biased(arch), PROMPT, max_new_tokens=2)
    for row in range(2):
        grid = s.contributions(row)
        tol = tolerance(s, row)
        for layer in range(grid.n_layers):
            for head in range(grid.n_heads):
                split = s.head_split(row, layer, head)
                assert abs(float(split.scores.sum()) - grid.contributions[layer, head]) <= tol, (row, layer, head)
                assert split.contribution == pytest.approx(grid.contributions[layer, head], abs=tol)
                assert split.completeness_error < EXACT


@pytest.mark.parametrize("rule", MLP_RULES)
def test_every_split_rule_keeps_the_sum(rule):
    s = HeadSession(biased("qwen2"), PROMPT, max_new_tokens=1, mlp_rule=rule)
    grid = s.contributions(0)
    for head in range(grid.n_heads):
        split = s.head_split(0, 0, head)
        assert abs(float(split.scores.sum()) - grid.contributions[0, head]) <= tolerance(s, 0)


def test_last_layer_without_mlps_is_the_heads_direct_write_per_source():
    """Independent: with every MLP's output projection zeroed, the last layer's head reaches the logit only
    through its direct write, which HeadContributions.per_source computes on another path (tested against
    the model's own forward in test_head_contributions.py)."""
    from attrwidgets.testing import tiny_handle

    handle = tiny_handle("llama", seed=5)
    with torch.no_grad():
        for block in handle.model.model.layers:
            block.mlp.down_proj.weight.zero_()
    s = HeadSession(handle, PROMPT, max_new_tokens=2)
    grid = s.contributions(1)
    last = grid.n_layers - 1
    for head in range(grid.n_heads):
        split = s.head_split(1, last, head)
        np.testing.assert_allclose(split.scores, grid.per_source[last, head], atol=tolerance(s, 1))
        assert np.abs(split.scores).max() > 0  # the check compares numbers, not two zeros


def test_causal_and_one_source_at_the_first_position():
    s = HeadSession(biased("llama"), PROMPT, max_new_tokens=2)
    split = s.head_split(0, 1, 0)
    assert np.all(split.scores[s.query_positions[0] + 1:] == 0)  # later tokens cannot be read
    assert len(split.scores) == len(s.tokens)
    frozen = s.frozen.prefix(1)  # position 0 reads only itself: its one source carries everything
    one = head_split_at(frozen, 1, 0, 0, 5)
    assert float(one.scores[0]) == pytest.approx(one.contribution, abs=1e-6)


def test_bad_layer_head_and_cancel():
    s = HeadSession(biased("llama"), PROMPT, max_new_tokens=1)
    with pytest.raises(AttrWidgetsError, match="layer=7 is out of range"):
        s.head_split(0, 7, 0)
    with pytest.raises(AttrWidgetsError, match="head=99 is out of range"):
        s.head_split(0, 0, 99)
    with pytest.raises(AttrWidgetsError, match="row"):
        s.head_split(5, 0, 0)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ComputationCancelled):
        s.head_split(0, 0, 0, cancel=cancel)


@pytest.mark.real_model
def test_real_model_head_split_sums_to_the_grid(real_model):
    s = HeadSession(real_model, "The capital of France is", max_new_tokens=1)
    grid = s.contributions(0)
    layer, head = np.unravel_index(np.abs(grid.contributions).argmax(), grid.contributions.shape)
    split = s.head_split(0, int(layer), int(head))
    assert abs(float(split.scores.sum()) - grid.contributions[layer, head]) <= tolerance(s, 0)
    assert split.split_error < EXACT
