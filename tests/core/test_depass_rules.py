"""The MLP split rules on hand-made contributions, with the pinned details of docs/methods/depass.md."""

from __future__ import annotations

import pytest
import torch

from attrwidgets.core.depass.rules import (
    MLP_RULES,
    linear_shares,
    max_shares,
    relu_shares,
    softmax_shares,
    split_rule,
    taylor_shares,
)
from attrwidgets.errors import AttrWidgetsError

# 4 components (the first is the bias component, as inside a propagation) x 1 position x 5 neurons
G = torch.tensor([
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [2.0, 0.0, -1.0, 0.0, 1.0],
    [1.0, 0.0, -2.0, 0.0, 1.0],
    [0.0, 0.0, 3.0, 0.0, 0.0],
]).unsqueeze(1)
G_REAL = G.sum(0)


@pytest.mark.parametrize("rule", MLP_RULES)
def test_shares_sum_to_one_and_unreached_neurons_go_to_bias(rule):
    shares = split_rule(rule)(G, G_REAL)
    torch.testing.assert_close(shares.sum(0), torch.ones(1, 5))
    assert shares[0, 0, 1] == 1.0 and shares[0, 0, 3] == 1.0  # no component reaches neurons 1 and 3


def test_softmax_is_masked_to_nonzero_contributions():
    shares = softmax_shares(G, G_REAL, temperature=0.1)
    assert shares[0, 0, 0] == 0.0 and shares[3, 0, 0] == 0.0  # exact zeros take no share
    expected = torch.softmax(torch.tensor([2.0, 1.0]) / 0.1, 0)
    torch.testing.assert_close(shares[1:3, 0, 0], expected)


def test_max_ties_go_to_the_first():
    shares = max_shares(G, G_REAL)
    assert shares[:, 0, 4].tolist() == [0.0, 1.0, 0.0, 0.0]  # components 1 and 2 tie at 1.0
    assert shares[:, 0, 2].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_linear_shifts_by_the_minimum_of_the_nonzero():
    shares = linear_shares(G, G_REAL)
    # neuron 2: g = [-1, -2, 3] -> shifted [1, 0, 5] / 6
    torch.testing.assert_close(shares[1:, 0, 2], torch.tensor([1 / 6, 0.0, 5 / 6]))
    # neuron 4: all equal -> equal shares among the two components that reach it
    torch.testing.assert_close(shares[:, 0, 4], torch.tensor([0.0, 0.5, 0.5, 0.0]))


def test_relu_and_its_linear_fallback():
    shares = relu_shares(G, G_REAL)
    torch.testing.assert_close(shares[:, 0, 0], torch.tensor([0.0, 2 / 3, 1 / 3, 0.0]))
    negative = -G.abs() - (G != 0) * 1.0  # every reaching component negative -> the linear rule
    torch.testing.assert_close(relu_shares(negative, negative.sum(0)), linear_shares(negative, negative.sum(0)))


def test_taylor_divides_by_the_real_preactivation():
    shares = taylor_shares(G, G_REAL)
    torch.testing.assert_close(shares[:, 0, 0], torch.tensor([0.0, 2 / 3, 1 / 3, 0.0]))
    assert shares[:, 0, 2].tolist() == [1.0, 0.0, 0.0, 0.0]  # g_real = -1 - 2 + 3 = 0: to the bias


def test_unknown_rule():
    with pytest.raises(AttrWidgetsError, match="Unknown mlp_rule 'soft'"):
        split_rule("soft")
