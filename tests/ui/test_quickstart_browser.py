"""The quickstart notebook and the TokenMatrix view in real JupyterLab + Chromium (fixtures: conftest.py).

What nbval cannot see: the bundle loads, the view renders, a click in the browser reaches the kernel, the
kernel recomputes, and the browser draws exactly the bytes the kernel holds (data-checksum, an FNV-1a of the
selected row written by js/token_matrix.ts, equals attrwidgets.widgets.checksum of the kernel's row).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ui

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "notebooks" / "quickstart.ipynb"
VIEW = ".aw-token-matrix:not(.aw-explorer .aw-token-matrix)"  # a TokenMatrix cell (not the explorer's part)
EXPLORER = ".aw-explorer"
TARGET_TOKENS = ".aw-text .aw-tok.aw-target:not(.aw-hidden)"  # generated tokens in the running text
HOSTILE = '<img src=x onerror="window.__aw_xss=1">'
HOSTILE_SCRIPT = "<script>window.__aw_xss=2</script>"

HOSTILE_CELL = f"""
import numpy as np
import attrwidgets as aw
from attrwidgets.core.tokens import Token

HOSTILE, HOSTILE_SCRIPT = {HOSTILE!r}, {HOSTILE_SCRIPT!r}
tokens = [Token(1, "Say", "Say", "prompt"), Token(2, HOSTILE, HOSTILE, "prompt"),
          Token(3, HOSTILE_SCRIPT, HOSTILE_SCRIPT, "generated"), Token(4, " ok", " ok", "generated")]
scores = np.array([[0.5, -0.25, 0.0, 0.0], [0.1, 0.2, 0.7, 0.0]], np.float32)
w = aw.TokenMatrix(aw.Attribution(tokens=tokens, target_positions=[2, 3], scores=scores, method="saliency"))
w
"""

# Defined silently in the notebook's kernel: what the kernel holds for one row of every TokenMatrix.
KERNEL_HELPERS = """
def _aw_ui_rows(row):
    import numpy as np
    from ipywidgets.widgets.widget import _instances  # ipywidgets 8's registry of open widgets
    from attrwidgets.widgets import TokenMatrix, checksum
    return [
        {"selected": w.selected_target, "busy": bool(w.busy), "error": w.error,
         "computed": bool(np.isfinite(w.scores[row]).any()), "checksum": checksum(w.scores[row])}
        for w in list(_instances.values())
        if isinstance(w, TokenMatrix) and w.scores is not None and row < w.scores.shape[0]
    ]
"""


def _click_target_and_match_kernel(page, nb, expect, timeout_s: float = 300) -> dict:
    """Click a generated token other than the selected one; wait until the browser shows the kernel's row."""
    view = page.locator(VIEW).first
    selected = view.get_attribute("data-selected-target")
    candidates = view.locator(f"{TARGET_TOKENS}:not([data-target='{selected}'])")
    assert candidates.count() > 0, f"no other generated token to click (selected row {selected})"
    token = candidates.last
    row = int(token.get_attribute("data-target"))
    renders = int(view.get_attribute("data-render-count"))

    t0 = time.monotonic()
    token.click()
    expect(view).to_have_attribute("data-selected-target", str(row))  # local set, before the kernel hears it
    nb.execute(KERNEL_HELPERS)
    done = nb.wait_for_kernel(
        f"[r for r in _aw_ui_rows({row}) if r['selected'] == {row} and not r['busy'] and r['computed']]",
        timeout_s=timeout_s,
    )
    assert len(done) == 1, f"expected one TokenMatrix on row {row} in the kernel, found {done}"
    assert done[0]["error"] == "", done[0]["error"]
    t1 = time.monotonic()
    expect(view).to_have_attribute("data-checksum", done[0]["checksum"], timeout=30_000)
    expect(view).to_have_attribute("data-busy", "false")
    expect(view).to_have_attribute("data-error", "")
    assert int(view.get_attribute("data-render-count")) > renders
    assert view.get_attribute("data-view-error") is None
    return {"click_to_kernel_done_s": t1 - t0, "click_to_redraw_s": time.monotonic() - t0}


def test_quickstart_click_redraws_kernel_row(lab, page, open_notebook, expect, save_timings):
    assert QUICKSTART.is_file(), f"{QUICKSTART.relative_to(REPO)} is missing: the README's demo opens it"
    lab.copy_in(QUICKSTART.parent)
    t0 = time.monotonic()
    nb = open_notebook(QUICKSTART.name)
    t1 = time.monotonic()
    nb.run_all(timeout_s=600)
    view = page.locator(VIEW).first
    view.wait_for(state="visible")
    assert page.locator(".aw-not-built").count() == 0, "front-end not built: run npm ci && npm run build"
    t2 = time.monotonic()
    expect(view).to_have_attribute("data-error", "")
    # The explorer on the default model, first in the notebook: every part drawn, none in error.
    explorer = page.locator(EXPLORER)
    expect(explorer).to_have_attribute("data-ready", "true", timeout=120_000)
    for part in (".aw-token-matrix", ".aw-head-grid", ".aw-graph-view", ".aw-layer-flow"):
        expect(explorer.locator(part)).to_have_count(1)
        expect(explorer.locator(part)).to_have_attribute("data-error", "")
    view.scroll_into_view_if_needed()
    nb.screenshot("quickstart-rendered")

    timings = _click_target_and_match_kernel(page, nb, expect)
    nb.screenshot("quickstart-after-click")
    assert page.console_errors == [], "\n".join(page.console_errors)
    save_timings({"open_to_kernel_idle_s": t1 - t0, "run_all_to_view_s": t2 - t1, **timings})


def test_hostile_token_text_renders_literally(lab, page, open_notebook, expect, save_timings):
    """Token strings are untrusted: markup in them must show as text (textContent), never become DOM."""
    name = lab.write_notebook("hostile.ipynb", [HOSTILE_CELL])
    nb = open_notebook(name)
    nb.run_all(timeout_s=120)
    view = page.locator(VIEW).first
    view.wait_for(state="visible")
    expect(view.locator(".aw-text .aw-tok[data-position='1']")).to_have_text(HOSTILE)
    expect(view.locator(".aw-text .aw-tok[data-position='2']")).to_have_text(HOSTILE_SCRIPT)
    timings = _click_target_and_match_kernel(page, nb, expect, timeout_s=30)
    nb.screenshot("hostile-tokens")
    assert view.locator("img, script").count() == 0, "token text became markup"
    assert page.evaluate("() => window.__aw_xss") is None, "token text ran as code"
    assert page.console_errors == [], "\n".join(page.console_errors)
    save_timings(timings)
