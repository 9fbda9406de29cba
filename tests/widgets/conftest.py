"""Fixtures for the widget tier (tests/widgets: serialization, traits, selection -> recompute, no kernel)."""

from __future__ import annotations

import pytest

from attrwidgets.core.token.result import Attribution

from .support import make_result


@pytest.fixture
def result() -> Attribution:
    return make_result()


@pytest.fixture(scope="session")
def tiny():
    from attrwidgets.testing import tiny_handle

    return tiny_handle("llama", seed=0)


VIEWS = ("token_matrix", "head_grid", "layer_flow", "diffusion_timeline", "graph_view", "explorer")


@pytest.fixture(scope="session")
def built_bundle():
    """Every view's built front-end (npm run build makes them all); builds it when node_modules is there,
    else skips with the reason shown. Returns the TokenMatrix bundle's path."""
    import shutil
    import subprocess
    from pathlib import Path

    from attrwidgets.widgets.base import bundle_path

    paths = [bundle_path(view) for view in VIEWS]
    root = Path(__file__).resolve().parents[2]
    missing = [p for p in paths if not p.is_file()]
    if missing and (root / "node_modules" / ".bin" / "esbuild").exists() and shutil.which("npm"):
        subprocess.run(["npm", "run", "build"], cwd=root, check=True, capture_output=True)
    if not all(p.is_file() for p in paths):
        pytest.skip("front-end not built: run npm ci && npm run build")
    return paths[0]


@pytest.fixture(scope="module")
def browser(built_bundle):
    """Headless Chromium for one test module (Playwright's sync API must not outlive it: tests/ui opens its own)."""
    from tests.browser_support import CHROMIUM_ARGS, find_chromium, unavailable

    try:
        from playwright import sync_api
    except ImportError:
        unavailable("needs the playwright package (pip install -e '.[dev]')")
    chromium = find_chromium()
    if chromium is None:
        unavailable("needs Chromium (Debian package `chromium`) for the browser check")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
