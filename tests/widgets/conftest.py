"""Fixtures for the widget tier (tests/widgets: serialization, traits, selection -> recompute, no kernel)."""

from __future__ import annotations

import pytest

from attrwidgets.core.result import Attribution

from .support import make_result


@pytest.fixture
def result() -> Attribution:
    return make_result()


@pytest.fixture(scope="session")
def tiny():
    from attrwidgets.testing import tiny_handle

    return tiny_handle("llama", seed=0)


@pytest.fixture(scope="session")
def built_bundle():
    """The built front-end; builds it when node_modules is there, else skips with the reason shown."""
    import shutil
    import subprocess
    from pathlib import Path

    from attrwidgets.widgets.base import bundle_path

    path = bundle_path("token_matrix")
    root = Path(__file__).resolve().parents[2]
    if not path.is_file() and (root / "node_modules" / ".bin" / "esbuild").exists() and shutil.which("npm"):
        subprocess.run(["npm", "run", "build"], cwd=root, check=True, capture_output=True)
    if not path.is_file():
        pytest.skip("front-end not built: run npm ci && npm run build")
    return path
