"""A head clicked in the HeadGrid: the linked TokenMatrix shows what that head carries to the target from each
source token (widgets/head_split_rows.py, docs/linking.md), and the row sums to the grid's number for it."""

from __future__ import annotations

import numpy as np
import pytest

import attrwidgets as aw
from attrwidgets.testing import tiny_handle

PROMPT = "The capital of France is"
TOLERANCE = 1e-4  # fp32 DePass, relative to the logit's scale (docs/methods/depass.md)


@pytest.fixture(scope="module")
def explorer():
    ex = aw.explore(tiny_handle("llama"), PROMPT, max_new_tokens=3, method="saliency", views=("tokens", "heads"))
    yield ex.wait(120)
    ex.close()


def click_head(grid, layer: int, head: int) -> None:
    with grid.hold_trait_notifications():  # one front-end message sets both, as a click does
        grid.selected_layer, grid.selected_head = layer, head


def test_a_head_click_shows_its_split_and_the_row_sums_to_the_grid(explorer):
    matrix, grid = explorer.views["tokens"], explorer.views["heads"]
    explorer.selected_target = 1
    click_head(grid, 1, 2)
    explorer.wait(120)
    assert matrix.head_split_of == [1, 2] and matrix.error == ""
    row = matrix.head_split[1]
    # the selected target's row, then (computed ahead while the user reads) the other targets' rows
    assert np.isfinite(matrix.head_split).all()
    contribution = float(grid.contributions[1, 2])
    scale = max(1.0, abs(float(grid.target_logit)))
    assert abs(float(row.sum()) - contribution) <= TOLERANCE * scale
    assert matrix.head_split_contribution[1] == pytest.approx(contribution, abs=TOLERANCE * scale)
    assert np.all(row[matrix.target_positions[1]:] == 0)  # the target and later tokens cannot be read

    explorer.selected_target = 2  # another target: its row for the same head
    explorer.wait(120)
    assert np.isfinite(matrix.head_split[2]).all() and np.isfinite(matrix.head_split[1]).all()


def test_the_last_head_clicked_wins_and_a_cleared_head_hides_the_split(explorer):
    matrix, grid = explorer.views["tokens"], explorer.views["heads"]
    explorer.selected_target = 0
    for head in range(4):  # rapid clicks
        click_head(grid, 0, head)
    explorer.wait(120)
    assert matrix.head_split_of == [0, 3] and np.isfinite(matrix.head_split[0]).all()
    click_head(grid, 1, 2)  # seen before: shown from the cache at once
    assert matrix.head_split_of == [1, 2] and np.isfinite(matrix.head_split[1]).all()
    click_head(grid, -1, -1)
    assert matrix.head_split_of == []
    explorer.wait(120)  # the cancelled job of row 0 ends without showing anything
    assert matrix.head_split_of == [] and not matrix.busy


def test_a_static_matrix_has_no_head_view():
    r = aw.attribute(tiny_handle("llama"), PROMPT, method="saliency", max_new_tokens=2)
    m = aw.TokenMatrix(r)
    m.selected_layer, m.selected_head = 0, 1
    assert m.head_split_of == [] and m.head_split is None
