"""The built DiffusionTimeline view in headless Chromium (the standalone export, no network).

Static page: the scrubber, the sequence at a step (masks as the mask text, new tokens highlighted), token and
heatmap clicks, the signed and per-token switches, the completeness flag, untrusted text kept as text, and the
drawn bytes the kernel's (data-checksum). Live: a Playwright binding stands in for the comm, as in
test_layer_flow_in_browser.py: the view's save_changes() sends the view traits to a live Python
DiffusionTimeline (a fake compute, injected with compute=), which answers with its traits. So "scrub a step and
click a token" goes through the view's own controls, the Python side's selection, and back into a redraw; a new
layer typed in the view recomputes in the kernel.
"""

from __future__ import annotations

import pytest

from attrwidgets.export_html import to_html
from attrwidgets.widgets import checksum
from attrwidgets.widgets.base import bundle_path
from attrwidgets.widgets.diffusion_timeline import DiffusionTimeline

from .support import HOSTILE, connect_to_widget, open_offline_page
from .test_diffusion_timeline import MASK_TEXT, FakeCompute, make_diffusion_result

ROOT = ".aw-diffusion-timeline"
VIEW_TRAITS = ["layer", "selected_target", "selected_position", "selected_step", "score_kind", "heatmap",
               "normalization"]
KERNEL_TRAITS = ["tokens", "n_prompt", "n_denoising_steps", "mask_text", "masked", "target_positions", "row_step",
                 "scores", "signed_scores", "completeness_error", "shown_layer", "layer", "selected_target",
                 "selected_position", "selected_step", "error", "busy"]



@pytest.fixture(scope="module")
def timeline_bundle(built_bundle):
    return bundle_path("diffusion_timeline")  # built_bundle builds (or skips for) every view in VIEWS


def attr(pg, name):
    return pg.get_attribute(ROOT, f"data-{name}")


def click_cell(pg, k, p):
    canvas = pg.locator(".aw-tl-canvas")
    x0, dx, top, ch = (float(canvas.get_attribute(f"data-{a}")) for a in ("x0", "dx", "hm-top", "cell-h"))
    canvas.click(position={"x": x0 + (p + 0.5) * dx, "y": top + (k + 0.5) * ch})


def test_static_page_scrubs_selects_and_keeps_text_as_text(browser, timeline_bundle, tmp_path):
    r = make_diffusion_result()
    to_html(r, tmp_path / "timeline.html")
    pg = open_offline_page(browser, tmp_path / "timeline.html", selector=f"{ROOT}[data-render-count]")
    assert (attr(pg, "selected-step"), attr(pg, "selected-target"), attr(pg, "new-positions")) == ("0", "0", "5,7")
    assert attr(pg, "checksum") == checksum(r.scores[0])
    assert attr(pg, "heatmap-checksum") == checksum(r.step_heatmap())  # the page sums each step as numpy does
    assert pg.locator(".aw-tok.aw-mask").count() == 4 and pg.locator(".aw-tok.aw-new").count() == 2
    assert pg.locator(".aw-tok.aw-mask").first.text_content() == MASK_TEXT
    assert pg.locator(".aw-tok", has_text=HOSTILE).count() == 2  # the prompt's, and position 7 that step 0 unmasks
    assert pg.locator(".aw-tok.aw-new[data-position='7']").text_content() == HOSTILE
    assert pg.locator(f"{ROOT} img").count() == 0

    pg.click("button[aria-label='next step']")
    pg.click("button[aria-label='next step']")
    assert (attr(pg, "selected-step"), attr(pg, "selected-target"), attr(pg, "masked-count")) == ("2", "4", "0")
    assert pg.locator(".aw-tok.aw-new").count() == 2 and pg.locator(f"{ROOT} img").count() == 0
    pg.click(".aw-tok[data-row='1']")  # position 7, unmasked at step 0: the scrubber follows
    assert (attr(pg, "selected-step"), attr(pg, "selected-target"), attr(pg, "target-position")) == ("0", "1", "7")
    assert attr(pg, "flagged") == "true" and pg.is_visible(".aw-badge.aw-bad")
    assert "5.0% above 2%" in pg.inner_text(".aw-warning")
    pg.click(".aw-tok[data-position='1']")  # a prompt token: the source
    assert attr(pg, "selected-source") == "1" and attr(pg, "selected-target") == "1"

    pg.select_option(".aw-toolbar select >> nth=0", "signed")
    assert attr(pg, "checksum") == checksum(r.signed_scores[1])
    pg.select_option(".aw-toolbar select >> nth=1", "rows")
    click_cell(pg, 3, 6)  # row 3 (position 8, step 1), column 6
    assert (attr(pg, "selected-target"), attr(pg, "selected-step"), attr(pg, "selected-source")) == ("3", "1", "6")
    pg.locator(".aw-tok[data-position='7']").hover()
    assert HOSTILE.replace(" ", "\u2423") in pg.inner_text(".aw-tooltip")  # labels show spaces as glyphs
    pg.screenshot(path=str(tmp_path / "diffusion_timeline_static.png"), full_page=True)
    assert pg.problems == [] and pg.dialogs == []
    pg.close()


def test_scrub_a_step_and_click_a_token_reaches_python_and_a_new_layer_recomputes(browser, timeline_bundle, tmp_path):
    fake = FakeCompute()
    w = DiffusionTimeline(make_diffusion_result(), model=object(), compute=fake)
    to_html(w, tmp_path / "live.html")
    pg = open_offline_page(browser, tmp_path / "live.html", selector=f"{ROOT}[data-render-count]")
    calls = connect_to_widget(pg, w, VIEW_TRAITS, KERNEL_TRAITS, timeout=10)
    renders = int(attr(pg, "render-count"))

    pg.click("button[aria-label='next step']")  # scrub to step 1
    pg.wait_for_function("() => document.querySelector('.aw-diffusion-timeline').dataset.selectedStep === '1'")
    pg.click(".aw-tok.aw-new[data-row='3']")  # step 1's second token, position 8
    pg.wait_for_function(
        """() => { const d = document.querySelector('.aw-diffusion-timeline').dataset;
                   return d.selectedTarget === '3' && d.busy === 'false'; }""", timeout=10_000)
    pg.wait_for_timeout(300)  # the write reaches the kernel
    pg.wait_for_function("() => document.querySelector('.aw-diffusion-timeline').dataset.busy === 'false'")
    assert calls and calls[-1]["selected_target"] == 3 and calls[-1]["selected_step"] == 1
    assert (w.selected_step, w.selected_target, w.target_position) == (1, 3, 8)
    assert attr(pg, "checksum") == checksum(w.scores[3])
    assert int(attr(pg, "render-count")) > renders and fake.calls == []

    pg.fill(".aw-tl-layer input", "block 0")
    pg.press(".aw-tl-layer input", "Enter")
    pg.wait_for_function(
        """() => { const d = document.querySelector('.aw-diffusion-timeline').dataset;
                   return d.shownLayer === 'block 0' && d.busy === 'false'; }""", timeout=10_000)
    assert [c["layer"] for c in fake.calls] == ["block 0"] and w.shown_layer == "block 0"
    assert attr(pg, "checksum") == checksum(make_diffusion_result("block 0").scores[3])  # the kernel's new bytes
    assert attr(pg, "selected-target") == "3" and pg.inner_text(".aw-error") == ""
    pg.screenshot(path=str(tmp_path / "diffusion_timeline_live.png"), full_page=True)

    pg.set_viewport_size({"width": 250 + 2 * 16, "height": 900})  # JupyterLab's sidebar (the page has 16 px margins)
    pg.wait_for_function("() => document.querySelector('.aw-diffusion-timeline').dataset.narrow === 'true'")
    view, box = pg.locator(ROOT).bounding_box(), pg.locator(".aw-tl-box").bounding_box()
    assert view["width"] <= 250 and box["x"] + box["width"] <= view["x"] + view["width"] + 0.5
    assert pg.locator(".aw-toolbar").bounding_box()["height"] < 40  # one row; the rest in the menu
    scrub = pg.locator(".aw-tl-scrub").bounding_box()
    assert scrub["x"] + scrub["width"] <= view["x"] + view["width"] + 0.5
    pg.screenshot(path=str(tmp_path / "diffusion_timeline_narrow.png"), full_page=True)
    assert pg.problems == [] and pg.dialogs == []
    pg.close()
    w.close()
