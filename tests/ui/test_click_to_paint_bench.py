"""benchmarks/explorer/click_to_paint.py on a tiny random model, end to end (about 40 s): it starts its own
JupyterLab and Chromium, so it runs in a subprocess, beside this package's Playwright (conftest.py). It checks that
every action ran and that every part that should answer a click did (benchmarks/README.md), never a time:
timings are benchmarks, not asserts (docs/architecture.md, Tests)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser_support import find_chromium, unavailable

pytestmark = pytest.mark.ui

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "explorer" / "click_to_paint.py"


def test_the_click_to_paint_benchmark_runs_on_a_tiny_model(tmp_path):
    if find_chromium() is None:
        unavailable("no chromium (looked for /usr/bin/chromium)")
    if importlib.util.find_spec("playwright") is None:
        unavailable("the `playwright` Python package is not installed (pip install -e '.[dev]')")
    out = tmp_path / "click.json"
    subprocess.run([sys.executable, str(SCRIPT), "--model", "tiny", "--repeats", "1", "--timeout", "60",
                    "--out", str(out)], cwd=REPO, check=True, timeout=240)
    report = json.loads(out.read_text())
    runs = {(r["action"], r["mode"]): r["views"] for r in report["runs"]}
    assert set(runs) == {(a, m) for a in ("open", "target", "head", "node") for m in ("cold", "warm")} - {
        ("open", "warm")} | {("open", "re-run")}
    for view, figures in runs[("open", "cold")].items():
        assert figures["first_paint_ms"] is not None and figures["answer_ms"] is not None, view
    for view, figures in runs[("target", "cold")].items():  # every part follows the clicked target
        assert figures["answer_ms"] is not None and figures["picked_ms"] is not None, view
        assert figures["answer_ms"] >= figures["picked_ms"] - 1e-6, view
    assert runs[("head", "cold")]["tokens"]["final"]["head-split"] == "1,2"
    assert runs[("node", "cold")]["flow"]["answer_ms"] is not None  # the flow marks the node's position
