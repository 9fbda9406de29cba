"""The built view, rendered by headless Chromium from the standalone export (no kernel, no network).

Checks what only a browser can: untrusted token text stays text, the drawn row is the row the kernel sent
(data-checksum), clicks select targets, and the busy/error/warning states show.
"""

from __future__ import annotations

import numpy as np
import pytest

from attrwidgets.export_html import to_html
from attrwidgets.widgets import checksum

from .support import HOSTILE, SCRIPT_BREAKER, open_offline_page

pytestmark = pytest.mark.usefixtures("built_bundle")


@pytest.fixture
def page(browser, result, tmp_path):
    path = tmp_path / "view.html"
    to_html(result, path, selected_target=1)
    pg = open_offline_page(browser, path)
    yield pg
    assert pg.problems == [] and pg.dialogs == []
    pg.close()


def attr(pg, name):
    return pg.get_attribute(".aw-root", f"data-{name}")


def test_renders_hostile_tokens_as_text(page):
    text = page.inner_text(".aw-text")
    assert HOSTILE in text and SCRIPT_BREAKER in text
    assert page.locator(".aw-root img").count() == 0
    assert page.locator(".aw-tok", has_text=HOSTILE).count() == 1
    assert page.locator(".aw-segment").evaluate_all("els => els.map(e => e.dataset.segment)") == [
        "user", "assistant", "generated"]


def test_checksum_matches_kernel_row_and_clicks_select(page, result):
    assert attr(page, "selected-target") == "1"
    assert attr(page, "checksum") == checksum(result.scores[1])
    page.click('.aw-tok[data-target="2"]')  # a generated token in the running text
    assert attr(page, "selected-target") == "2"
    assert attr(page, "checksum") == checksum(result.scores[2])
    page.click('.aw-hm-rowlabel[data-target="0"]')  # a heatmap row label
    assert attr(page, "selected-target") == "0"
    assert attr(page, "checksum") == checksum(result.scores[0])
    assert page.evaluate("window.attrwidgetsModel.get('selected_target')") == 0


def test_completeness_warning_tooltip_and_hide_special(page):
    assert attr(page, "completeness-warning") == "true"  # row 1 has 20% > 5%
    assert "20.0%" in page.inner_text(".aw-warning")
    page.hover(".aw-hm-canvas", position={"x": 3, "y": 3})
    tip = page.inner_text(".aw-tooltip")
    assert "source #0" in tip and "target #0" in tip and "score" in tip
    specials = page.locator(".aw-tok.aw-special")
    assert specials.count() == 3 and specials.first.is_visible()
    page.get_by_label("hide special tokens").check()
    assert not specials.first.is_visible()
    assert page.locator(".aw-hm-collabel").count() == 5


def test_kernel_updates_busy_error_and_new_scores(page, result):
    page.evaluate("window.attrwidgetsModel.set('busy', true)")
    assert attr(page, "busy") == "true" and page.is_visible(".aw-busy")
    assert page.inner_text(".aw-busy-label") == "computing\u2026"
    page.evaluate("window.attrwidgetsModel.set('busy_estimate', 'about 40 s')")  # the kernel's estimate
    assert page.inner_text(".aw-busy-label") == "computing\u2026 about 40 s"
    page.evaluate("window.attrwidgetsModel.set('error', 'RuntimeError: <b>boom</b>')")
    assert attr(page, "error") == "RuntimeError: <b>boom</b>"
    assert page.inner_text(".aw-error") == "RuntimeError: <b>boom</b>" and page.locator(".aw-error b").count() == 0
    count = int(attr(page, "render-count"))
    new = np.full_like(result.scores, np.nan)
    new[1, :3] = [1.0, -2.0, 0.5]
    page.evaluate(
        """(vals) => {
            const data = Float32Array.from(vals, (v) => (v === null ? NaN : v));
            window.attrwidgetsModel.set('scores', {buffer: new DataView(data.buffer), dtype: 'float32',
                                                   shape: [3, 8]});
        }""",
        [None if np.isnan(v) else float(v) for v in new.ravel()],
    )
    assert int(attr(page, "render-count")) == count + 1
    assert attr(page, "checksum") == checksum(new[1])
    page.evaluate("window.attrwidgetsModel.set('busy', false); window.attrwidgetsModel.set('error', '')")
    assert attr(page, "busy") == "false" and not page.is_visible(".aw-error")
    assert page.locator(".aw-busy-label").text_content() == "computing\u2026"  # no estimate while idle
    page.get_by_label("normalise").select_option("global")  # the widget still responds
    assert page.evaluate("window.attrwidgetsModel.get('normalization')") == "global"
