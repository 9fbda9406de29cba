"""Every view lays itself out for its width (headless Chromium on the standalone page; no kernel, no network).

At 250 px (JupyterLab's right sidebar): the toolbar keeps to about one row (secondary controls in a menu), the
heatmap scrolls in its own box with its row labels in view, nothing sticks out of the view, and the tooltip
lies inside the view's box. The tooltip follows the selection without a mouse move, and whitespace tokens are
visible glyphs wide enough to click.
"""

from __future__ import annotations

import numpy as np
import pytest

from attrwidgets.core.depass.result import HeadContributions
from attrwidgets.core.token.result import Attribution
from attrwidgets.core.tokens import Token
from attrwidgets.export_html import to_html

from .support import open_offline_page

pytestmark = pytest.mark.usefixtures("built_bundle")
SIDEBAR = 250
MARGIN = 16  # the standalone page's body margin
SENTENCE = "The quick brown fox jumps over the lazy dog while the cat sleeps on a warm and sunny window sill all day"
WORDS = [w if i == 0 else f" {w}" for i, w in enumerate(SENTENCE.split())]


def long_result() -> Attribution:
    """22 prompt tokens (the heatmap overflows 250 px), then generated tokens with a newline and a lone space."""
    tokens = [Token(i, w, w, "prompt") for i, w in enumerate(WORDS)]
    for text in ("\n", " Paris", " ", "ok"):
        tokens.append(Token(len(tokens), text, text, "generated"))
    targets = list(range(len(WORDS), len(tokens)))
    rng = np.random.default_rng(0)
    scores = np.tril(rng.normal(size=(len(targets), len(tokens))), len(WORDS) - 1).astype(np.float32)
    return Attribution(tokens=tokens, target_positions=targets, scores=scores, method="saliency",
                       model_id="an-organisation/a-model-with-a-rather-long-name-7b-instruct",
                       target_prob=np.full(len(targets), 0.5), target_entropy=np.full(len(targets), 1.0))


def many_heads(n_layers: int = 4, n_heads: int = 40) -> HeadContributions:
    tokens = [Token(i, w, w, "prompt") for i, w in enumerate(["The", " cat", "\n", " sat", " on"])]
    t = len(tokens)
    rng = np.random.default_rng(1)
    att = np.tril(rng.random((n_layers, n_heads, t, t)) + 0.01).astype(np.float32)
    att /= att.sum(-1, keepdims=True)
    c = rng.normal(size=(n_layers, n_heads)).astype(np.float32)
    return HeadContributions(
        tokens=tokens, position=t - 1, target_id=1, target_text=" the", contributions=c,
        per_source=att[:, :, t - 1, :] * c[:, :, None], attention=att, stream=np.zeros(n_layers, np.float32),
        bias=np.zeros(n_layers, np.float32), logit=float(c.sum()), completeness_error=1e-6, model_id="heads-40")


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("layout")
    to_html(long_result(), out / "tm.html", selected_target=1)
    to_html(many_heads(), out / "hg.html")
    return out


@pytest.fixture
def open_page(browser, pages):
    opened = []

    def _open(name: str, width: int):
        pg = open_offline_page(browser, pages / name, width=width + 2 * MARGIN)
        opened.append(pg)
        return pg

    yield _open
    for pg in opened:
        assert pg.problems == []
        pg.close()


def box(pg, selector):
    return pg.locator(selector).first.bounding_box()


def assert_inside(inner, outer, slack=0.5):
    assert inner["x"] >= outer["x"] - slack and inner["y"] >= outer["y"] - slack, (inner, outer)
    assert inner["x"] + inner["width"] <= outer["x"] + outer["width"] + slack, (inner, outer)
    assert inner["y"] + inner["height"] <= outer["y"] + outer["height"] + slack, (inner, outer)


def one_row_high(pg, root, rows):
    control = box(pg, f"{root} .aw-toolbar select")["height"]
    return box(pg, f"{root} .aw-toolbar")["height"] <= rows * control + 12


def no_overflow(pg, root):
    return pg.eval_on_selector(root, "el => el.scrollWidth <= el.clientWidth + 1")


def test_token_matrix_at_250px(open_page):
    pg = open_page("tm.html", SIDEBAR)
    root = ".aw-token-matrix"
    assert pg.get_attribute(root, "data-narrow") == "true" and box(pg, root)["width"] <= SIDEBAR
    assert one_row_high(pg, root, 2) and no_overflow(pg, root)
    assert not pg.is_visible(".aw-toolbar-more") and pg.is_visible(".aw-model-id")  # ellipsized, titled
    assert pg.get_attribute(".aw-model-id", "title").endswith("7b-instruct")
    pg.click(".aw-menu-toggle")  # the menu: the other controls and the model's full name
    assert pg.is_visible(".aw-toolbar-more") and "a-rather-long-name-7b-instruct" in pg.inner_text(".aw-toolbar-more")
    assert_inside(box(pg, ".aw-toolbar-more"), box(pg, root))
    pg.get_by_label("normalise").select_option("global")
    assert pg.evaluate("window.attrwidgetsModel.get('normalization')") == "global"
    pg.keyboard.press("Escape")
    assert not pg.is_visible(".aw-toolbar-more")

    # The heatmap scrolls in its own box; the row labels stay in view (sticky) and keep their clicks.
    scroll = pg.locator(".aw-hm-scroll")
    assert scroll.evaluate("el => el.scrollWidth > el.clientWidth + 100")
    scroll.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    label = pg.locator('.aw-hm-rowlabel[data-target="3"]')
    assert_inside(label.bounding_box(), scroll.bounding_box())
    b = label.bounding_box()
    on_top = pg.evaluate("([x, y]) => document.elementFromPoint(x, y).closest('.aw-hm-rowlabel')?.dataset.target",
                         [b["x"] + b["width"] / 2, b["y"] + b["height"] / 2])
    assert on_top == "3", "the row label is covered after scrolling"
    label.click()
    assert pg.get_attribute(root, "data-selected-target") == "3"

    # The tooltip stays inside the view: at the right edge of the heatmap and at the end of the text.
    canvas = box(pg, ".aw-hm-canvas")
    visible_right = min(canvas["x"] + canvas["width"], scroll.bounding_box()["x"] + scroll.bounding_box()["width"])
    pg.mouse.move(visible_right - 3, canvas["y"] + canvas["height"] - 3)
    assert "source #" in pg.inner_text(".aw-tooltip")
    assert_inside(box(pg, ".aw-tooltip"), box(pg, root))
    pg.hover(f'.aw-text .aw-tok[data-position="{len(WORDS) + 3}"]')
    assert_inside(box(pg, ".aw-tooltip"), box(pg, root))


def test_token_matrix_full_width(open_page):
    pg = open_page("tm.html", 1100)
    root = ".aw-token-matrix"
    assert pg.get_attribute(root, "data-narrow") == "false"
    assert one_row_high(pg, root, 1) and no_overflow(pg, root)
    assert not pg.is_visible(".aw-menu-toggle") and pg.is_visible(".aw-hm-stat")
    assert pg.get_by_label("hide special tokens").is_visible() and pg.get_by_label("sign").is_visible()


def test_tooltip_follows_the_selection(open_page):
    pg = open_page("tm.html", 1100)
    token = pg.locator('.aw-text .aw-tok[data-target="2"]')
    token.hover()
    assert "target #1 " in pg.inner_text(".aw-tooltip")  # the selected target when the page opened
    token.click()  # the pointer does not move after the click: the tooltip must still follow
    assert pg.get_attribute(".aw-root", "data-selected-target") == "2"
    assert "target #2 " in pg.inner_text(".aw-tooltip")
    pg.evaluate("window.attrwidgetsModel.set('selected_target', 0)")  # a selection from Python, too
    assert "target #0 " in pg.inner_text(".aw-tooltip")


def test_whitespace_tokens_are_visible_and_clickable(open_page):
    pg = open_page("tm.html", 1100)
    for pos, glyph, row in ((len(WORDS), "\u21b5", "0"), (len(WORDS) + 2, "\u2423", "2")):
        tok = pg.locator(f'.aw-text .aw-tok[data-position="{pos}"]')
        assert tok.inner_text() == glyph
        b = tok.bounding_box()
        assert b["width"] >= 8 and b["height"] >= 10, (pos, b)
        tok.click()
        assert pg.get_attribute(".aw-root", "data-selected-target") == row


def test_head_grid_at_250px_scrolls_with_sticky_labels(open_page):
    pg = open_page("hg.html", SIDEBAR)
    root = ".aw-head-grid"
    assert pg.get_attribute(root, "data-narrow") == "true" and box(pg, root)["width"] <= SIDEBAR
    assert one_row_high(pg, root, 2) and no_overflow(pg, root)
    grid = pg.locator(".aw-hg-box")
    canvas = pg.locator(".aw-hg-canvas")
    assert grid.evaluate("el => el.scrollWidth > el.clientWidth")  # 40 heads do not fit: the box scrolls
    left = grid.evaluate("el => { el.scrollLeft = 120; return el.scrollLeft; }")
    pg.wait_for_function(f"() => document.querySelector('.aw-hg-canvas').dataset.labelsAt === '{left},0'")
    cell, label_w, top = (float(canvas.get_attribute(f"data-{k}")) for k in ("cell", "left", "top"))
    head = int((left + label_w + 1.5 * cell - label_w) // cell)  # the second head column in view
    canvas.click(position={"x": left + label_w + 1.5 * cell, "y": top + 0.5 * cell})
    assert (pg.get_attribute(root, "data-selected-layer"), pg.get_attribute(root, "data-selected-head")) == (
        "0", str(head))
    pg.keyboard.press("Escape")
    canvas.click(position={"x": left + 5, "y": top + 0.5 * cell})  # on the sticky layer labels: no head
    assert pg.get_attribute(root, "data-detail-open") == "false"
    right = grid.bounding_box()["x"] + grid.evaluate("el => el.clientLeft + el.clientWidth")
    pg.mouse.move(right - 3, canvas.bounding_box()["y"] + top + 3.5 * cell)  # the last layer's rightmost cell in view
    assert "layer " in pg.inner_text(".aw-tooltip")
    assert_inside(box(pg, ".aw-tooltip"), box(pg, root))

