"""The HeadGrid view in real JupyterLab + Chromium on a tiny random model (fixtures: conftest.py).

A click on a head reaches the kernel, which sends that head's pattern on request (the detail opens with the
kernel's data); a click on a generated token makes the kernel run DePass for that target, and the browser
draws exactly the contributions the kernel holds (data-checksum, an FNV-1a of the (L, H) float32 grid written
by js/head_grid.ts, equals attrwidgets.widgets.checksum of the kernel's widget.contributions). The linked
bqplot chart renders beside it.
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.ui

VIEW = ".aw-head-grid"
TARGET_TOKENS = ".aw-text .aw-tok.aw-target"

# Written into the server's temp root by the test (notebooks/ holds only shipped notebooks).
CELLS = [
    """
from attrwidgets.testing import tiny_handle
from attrwidgets.widgets.head_grid import HeadGrid

grid = HeadGrid(model=tiny_handle("llama"), prompt="The capital of France is", max_new_tokens=3)
grid
""",
    "chart = grid.chart()\nchart",
]

# Defined silently in the notebook's kernel: what the kernel holds for the grid.
KERNEL_HELPERS = """
def _aw_grid():
    import numpy as np
    from attrwidgets.widgets import checksum
    return {"selected": grid.selected_target, "busy": bool(grid.busy), "error": grid.error,
            "computed": bool(np.isfinite(grid.contributions).all()), "checksum": checksum(grid.contributions),
            "detail_key": list(grid.detail_key), "detail": grid.detail_attention is not None,
            "chart_title": chart.title}
"""


def _kernel_done(nb, row: int, timeout_s: float = 120) -> dict:
    return nb.wait_for_kernel(
        f"(lambda s: s if s['selected'] == {row} and not s['busy'] and s['computed'] else None)(_aw_grid())",
        timeout_s=timeout_s,
    )


def test_head_click_opens_detail_and_target_click_recomputes(lab, page, open_notebook, expect, save_timings):
    name = lab.write_notebook("head_grid.ipynb", CELLS)
    nb = open_notebook(name)
    t0 = time.monotonic()
    view = nb.run_view(VIEW, KERNEL_HELPERS)
    state = _kernel_done(nb, 0)
    assert state["error"] == "", state["error"]
    expect(view).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    expect(view).to_have_attribute("data-busy", "false")
    t1 = time.monotonic()

    # A head: the detail opens at once (local), then fills with the kernel's pattern for that head.
    canvas = view.locator(".aw-hg-canvas")
    cell, left, top = (float(canvas.get_attribute(f"data-{k}")) for k in ("cell", "left", "top"))
    canvas.click(position={"x": left + 2.5 * cell, "y": top + 1.5 * cell})  # layer 1, head 2
    expect(view).to_have_attribute("data-detail-open", "true")
    expect(view).to_have_attribute("data-selected-layer", "1")
    expect(view).to_have_attribute("data-selected-head", "2")
    detail = nb.wait_for_kernel("(lambda s: s if s['detail'] and s['detail_key'][:2] == [1, 2] else None)(_aw_grid())")
    assert detail["detail_key"] == [1, 2, 0]
    expect(view.locator(".aw-detail-canvas")).to_be_visible()
    expect(view.locator(".aw-detail .aw-notice")).not_to_contain_text("loading")
    assert "layer 1 head 2" in detail["chart_title"]  # the linked chart follows the selection
    t2 = time.monotonic()

    # A target token: the kernel runs DePass for that row; the browser draws the kernel's bytes.
    token = view.locator(f"{TARGET_TOKENS}[data-target='2']")
    renders = int(view.get_attribute("data-render-count"))
    token.click()
    expect(view).to_have_attribute("data-selected-target", "2")
    state = _kernel_done(nb, 2)
    assert state["error"] == "", state["error"]
    expect(view).to_have_attribute("data-checksum", state["checksum"], timeout=30_000)
    expect(view).to_have_attribute("data-busy", "false")
    expect(view).to_have_attribute("data-error", "")
    assert int(view.get_attribute("data-render-count")) > renders
    assert view.get_attribute("data-view-error") is None
    t3 = time.monotonic()

    canvas.focus()  # the grid's keys reach the view, not JupyterLab's notebook shortcuts
    page.keyboard.press("ArrowRight")  # with the detail open, the selection follows the cursor
    expect(view).to_have_attribute("data-selected-head", "3")
    page.keyboard.press("Escape")
    expect(view).to_have_attribute("data-detail-open", "false")
    nb.wait_for_kernel("_aw_grid()['detail_key'] == []")
    assert page.locator(".bqplot").count() >= 1, "the bqplot chart did not render"
    nb.screenshot("head-grid")
    assert page.console_errors == [], "\n".join(page.console_errors)
    save_timings({"run_all_to_computed_s": t1 - t0, "head_click_to_detail_s": t2 - t1,
                  "target_click_to_redraw_s": t3 - t2})
