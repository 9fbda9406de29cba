"""The Explorer's standalone page (aw.to_html(ex)) in headless Chromium: no kernel, no network. Hovering a token
in one part brushes that position in every part; a target clicked in the matrix moves the other parts by
position (js/lib/page_link.ts mirrors widgets/linking.py), and each draws the kernel's bytes for it
(data-checksum against the live widgets), or says the export does not hold them."""

from __future__ import annotations

import pytest

import attrwidgets as aw
from attrwidgets.testing import tiny_handle
from attrwidgets.widgets import checksum

from .support import open_offline_page

PARTS = {"tokens": ".aw-token-matrix", "heads": ".aw-head-grid", "graph": ".aw-graph-view", "flow": ".aw-layer-flow"}


@pytest.fixture(scope="module")
def explorer(built_bundle):
    ex = aw.explore(tiny_handle("llama"), "The capital of France is", max_new_tokens=3, method="saliency").wait(120)
    ex.selected_target = 1  # rows 0 (the first selection) and 1 are computed in every part; row 2 only by the
    # views that compute ahead (the grid and the matrix)
    ex.wait(120)
    yield ex
    ex.close()


@pytest.fixture
def page(browser, explorer, tmp_path):
    explorer.to_html(tmp_path / "explore.html")
    pg = open_offline_page(browser, tmp_path / "explore.html", width=1300, selector=".aw-explorer[data-ready]")
    yield pg
    assert pg.problems == [] and pg.dialogs == []
    pg.close()


def data(pg, name: str, key: str) -> str | None:
    return pg.get_attribute(f".aw-explorer {PARTS[name]}", f"data-{key}")


def kernel_checksums(ex) -> dict:
    views = ex.views
    return {"tokens": checksum(views["tokens"].scores[ex.selected_target]),
            "heads": checksum(views["heads"].contributions), "flow": checksum(views["flow"].values)}


def test_every_part_draws_the_kernel_state(page, explorer):
    assert page.locator(".aw-explorer").get_attribute("data-layout") == "grid"
    for name, expected in kernel_checksums(explorer).items():
        assert data(page, name, "checksum") == expected, name
    assert data(page, "heads", "selected-target") == data(page, "tokens", "selected-target") == "1"
    assert data(page, "flow", "target-position") == str(explorer.target_positions[1])


def test_hovering_a_token_brushes_it_in_every_part(page, explorer):
    matrix = page.locator(".aw-token-matrix")
    matrix.locator(".aw-text .aw-tok[data-position='2']").hover()
    for name in PARTS:
        assert data(page, name, "brushed") == "2", name
    for name in ("heads", "flow"):  # their running text marks the same token
        assert page.locator(f"{PARTS[name]} .aw-text .aw-tok.aw-brushed").evaluate_all(
            "els => els.map(e => e.dataset.position)") == ["2"], name
    assert matrix.locator(".aw-hm-collabel.aw-brushed").get_attribute("data-position") == "2"  # its column
    assert page.evaluate("window.attrwidgetsModel.get('selected_position')") == -1  # a hover selects nothing
    page.mouse.move(5, 5)  # off every token: no position brushed
    for name in PARTS:
        assert data(page, name, "brushed") == "-1", name
    page.locator(".aw-layer-flow .aw-text .aw-tok[data-position='1']").hover()  # from another part
    assert data(page, "tokens", "brushed") == data(page, "graph", "brushed") == "1"


def test_a_target_clicked_in_the_matrix_moves_the_other_parts(page, explorer):
    targets = explorer.target_positions
    page.locator(".aw-token-matrix .aw-text .aw-tok.aw-target[data-target='0']").click()
    assert page.evaluate("window.attrwidgetsModel.get('selected_target')") == 0
    assert data(page, "heads", "selected-target") == "0"
    assert data(page, "flow", "target-position") == str(targets[0])  # its own row for that position
    assert data(page, "graph", "selected-index") == "-1"  # a graph has no target rows: it keeps its own
    assert data(page, "flow", "picked") == "-1"  # the pick was answered at once, in the page
    explorer.selected_target = 0  # the kernel's answer for the same click
    explorer.wait(120)
    for name, expected in kernel_checksums(explorer).items():
        assert data(page, name, "checksum") == expected, name
    assert page.inner_text(".aw-head-grid .aw-warning") == ""

    page.locator(".aw-token-matrix .aw-text .aw-tok.aw-target[data-target='2']").click()
    assert data(page, "heads", "selected-target") == "2"  # the grid computed row 2 ahead: the page holds it
    assert data(page, "heads", "checksum") == checksum(explorer.views["heads"].computed_rows()[2].contributions)
    assert page.inner_text(".aw-head-grid .aw-warning") == ""
    assert "not computed in this export" in page.inner_text(".aw-layer-flow .aw-warning")  # the flow did not
    assert data(page, "flow", "target-position") == str(targets[2])


def test_a_head_clicked_in_the_grid_moves_the_flow(page):
    grid = page.locator(".aw-head-grid .aw-hg-canvas")
    grid.focus()
    page.keyboard.press("Enter")  # the grid's keyboard cursor opens layer 0, head 0
    assert data(page, "heads", "selected-layer") == "0" and data(page, "heads", "selected-head") == "0"
    assert data(page, "flow", "selected-layer") == "0" and data(page, "flow", "selected-head") == "0"
    assert page.evaluate("window.attrwidgetsParts.flow.get('sum_heads')") is False  # a head chosen is shown
