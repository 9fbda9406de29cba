"""The built HeadGrid view, rendered by headless Chromium from the standalone export (no kernel, no network).

What only a browser can check: a click on the canvas opens the head's detail (the page's standalone() answers
as the kernel would), arrows + Enter and Escape work on the focused grid, tokens (whitespace included) pick
the target or the source, the drawn contributions are the kernel's bytes (data-checksum), untrusted token
text stays text, and the layout fits a 250 px sidebar.
"""

from __future__ import annotations

import numpy as np
import pytest

from attrwidgets.export_html import to_html
from attrwidgets.widgets import checksum
from attrwidgets.widgets.head_grid import HeadGrid

from .head_support import FakeHeadSession, expected_contributions
from .support import HOSTILE, open_offline_page


@pytest.fixture(scope="module")
def page_path(tmp_path_factory):
    """Rows 0 and 1 computed in the kernel before the export; row 2 was never computed."""
    w = HeadGrid(session=FakeHeadSession()).wait(10)
    w.selected_target = 1
    w.wait(10)
    w.selected_target = 0
    path = tmp_path_factory.mktemp("heads") / "heads.html"
    to_html(w, path)
    w.close()
    return path


def open_page(browser, path, width=1100):
    return open_offline_page(browser, path, width=width, selector=".aw-head-grid[data-render-count]")


@pytest.fixture
def page(browser, page_path):
    pg = open_page(browser, page_path)
    yield pg
    assert pg.problems == [] and pg.dialogs == []
    pg.close()


def attr(pg, name):
    return pg.get_attribute(".aw-head-grid", f"data-{name}")


def click_cell(pg, layer, head):
    canvas = pg.locator(".aw-hg-canvas")
    cell, left, top = (float(canvas.get_attribute(f"data-{k}")) for k in ("cell", "left", "top"))
    canvas.click(position={"x": left + (head + 0.5) * cell, "y": top + (layer + 0.5) * cell})


def test_click_a_cell_opens_the_detail_and_escape_closes_it(page):
    assert attr(page, "detail-open") == "false" and not page.is_visible(".aw-detail")
    assert attr(page, "checksum") == checksum(expected_contributions(0))
    click_cell(page, 2, 1)
    assert (attr(page, "selected-layer"), attr(page, "selected-head"), attr(page, "detail-open")) == ("2", "1", "true")
    assert page.is_visible(".aw-detail-canvas")
    assert "layer 2 \u00b7 head 1" in page.inner_text(".aw-detail-title")
    assert "contribution" in page.inner_text(".aw-detail .aw-info")
    assert page.evaluate("window.attrwidgetsModel.get('detail_key')") == [2, 1, 0]
    page.hover(".aw-detail-canvas", position={"x": 100, "y": 70})
    assert "query #" in page.inner_text(".aw-tooltip")
    page.keyboard.press("Escape")
    assert attr(page, "detail-open") == "false" and attr(page, "selected-head") == "-1"
    click_cell(page, 0, 3)
    page.click(".aw-detail-close")
    assert attr(page, "detail-open") == "false"


def test_arrows_and_enter_on_the_focused_grid(page):
    canvas = page.locator(".aw-hg-canvas")
    canvas.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert canvas.get_attribute("data-cursor") == "1,2" and attr(page, "detail-open") == "false"
    page.keyboard.press("Enter")
    assert (attr(page, "selected-layer"), attr(page, "selected-head"), attr(page, "detail-open")) == ("1", "2", "true")
    page.keyboard.press("ArrowUp")  # with the detail open, the selection follows the cursor
    assert (attr(page, "selected-layer"), attr(page, "selected-head")) == ("0", "2")
    page.keyboard.press("Escape")
    assert attr(page, "detail-open") == "false"


def test_tokens_pick_the_target_or_the_source(page):
    text = page.inner_text(".aw-text")
    assert HOSTILE in text and page.locator(".aw-root img").count() == 0
    page.click('.aw-tok[data-target="1"]')
    assert attr(page, "selected-target") == "1"
    assert attr(page, "checksum") == checksum(expected_contributions(1))
    page.click('.aw-tok[data-target="2"]')  # never computed: NaN, and the view says so
    assert attr(page, "checksum") == checksum(np.full((3, 4), np.nan, np.float32))
    assert "not been computed" in page.inner_text(".aw-warning")
    for pos in (2, 4, 1):  # a newline token, a lone space, a word
        tok = page.locator(f'.aw-tok[data-position="{pos}"]')
        box = tok.bounding_box()
        assert box and box["width"] >= 4 and box["height"] >= 8, (pos, box)
        tok.click()
        assert attr(page, "selected-source") == str(pos)
    page.click('.aw-tok[data-target="0"]', modifiers=["Shift"])  # shift-click: a target token as the source
    assert attr(page, "selected-source") == "5" and attr(page, "selected-target") == "2"
    page.select_option(".aw-toolbar select", "source_weight")
    assert attr(page, "statistic") == "source_weight"
    stats = page.evaluate("Array.from(new Float32Array(window.attrwidgetsModel.get('attention_stats').buffer.buffer))")
    expected = FakeHeadSession().attention[:, :, 6, 5]  # target 2 is predicted at position 6; source 5
    np.testing.assert_allclose(np.reshape(stats, (3, 3, 4))[2], expected, atol=1e-3)  # float16 in the page


def test_busy_error_and_a_narrow_sidebar(browser, page_path):
    pg = open_page(browser, page_path, width=250)
    root = pg.locator(".aw-head-grid")
    assert root.bounding_box()["width"] <= 250
    canvas_box = pg.locator(".aw-hg-canvas").bounding_box()
    assert canvas_box["x"] + canvas_box["width"] <= 250
    assert int(pg.locator(".aw-hg-canvas").get_attribute("data-cell")) >= 28  # thumbnails still drawn
    pg.evaluate("window.attrwidgetsModel.set('busy', true)")
    assert attr(pg, "busy") == "true" and pg.is_visible(".aw-busy")
    pg.evaluate("window.attrwidgetsModel.set('error', 'RuntimeError: <b>boom</b>')")
    assert pg.inner_text(".aw-error") == "RuntimeError: <b>boom</b>" and pg.locator(".aw-error b").count() == 0
    click_cell(pg, 0, 0)  # still works while busy and with an error
    assert attr(pg, "detail-open") == "true"
    assert pg.problems == [] and pg.dialogs == []
    pg.close()
