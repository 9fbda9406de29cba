"""Click-to-paint latency of aw.explore(model, prompt) in real Chromium in JupyterLab, per action and per view.

    python benchmarks/explorer/click_to_paint.py                # the default model (SmolLM2-135M), a few minutes
    python benchmarks/explorer/click_to_paint.py --model tiny   # a tiny random llama: the smoke run, ~30 s

Starts its own JupyterLab server and Chromium (tests/ui/jupyter.py's JupyterServer and Notebook, driven by
Playwright as tests/ui does), runs `ex = aw.explore(handle, "The capital of France is", max_new_tokens=8)` in a
notebook and then clicks as a user would:
  open    the cell run (Ctrl+Enter) -> each part's first paint, and each part showing its final answer;
          "re-run": the same cell again at the end (a new Source, so nothing cached; the process is warm);
  target  a generated token in the matrix (target 2) -> every part showing that target's answer;
  head    a head in the grid (layer 1, head 2) -> the matrix showing that head's split (data-head-split);
  node    a graph node -> every part at its position (the flow's data-selected-source, the marks).
Cold: the first time that selection is asked for; warm: the same click again after clicking elsewhere and back
(median of --repeats). Times are measured in the page (benchmarks/explorer/click_probe.py): from the click reaching
the window to the first animation frame after the part's data-* attributes show the answer; the kernel only says
which answer is right and final (its checksums; no view busy, no IG row refining). Writes
benchmarks/results/explorer_click_to_paint_<model>.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `benchmarks.*`, `tests.*`

from benchmarks.explorer import click_probe as probe
from benchmarks.harness import RESULTS, loadavg, wait_for_quiet, write_json
from tests.ui.jupyter import JupyterServer, Notebook

PROMPT = "The capital of France is"
MODELS = {"default": "aw.load_model()", "tiny": 'tiny_handle("llama")'}
TARGET, HEAD = 2, (1, 2)  # the clicked target row, and the clicked (layer, head): both exist in either model
VIEWS = tuple(probe.PARTS)
EX = ".aw-explorer"
# tests/browser_support.py's CHROMIUM_ARGS and find_chromium: that module imports pytest, this runs without it
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def cells(model: str) -> list[str]:
    setup = f"import attrwidgets as aw\nfrom attrwidgets.testing import tiny_handle\n\nhandle = {MODELS[model]}"
    # Closing the last run's explorer first: its worker would otherwise compute beside the new one's.
    explore = (f"if 'ex' in globals():\n    ex.close()\nex = aw.explore(handle, {PROMPT!r}, max_new_tokens=8)\nex")
    return [setup, explore]


class Bench:
    """One notebook in one page: run its cells, click, and read what the probe recorded."""

    def __init__(self, nb: Notebook, page, timeout_s: float):
        self.nb, self.page, self.timeout_s = nb, page, timeout_s
        self.runs: list[dict] = []

    # -- one measured action ------------------------------------------------------------------------------
    def measure(self, action: str, mode: str, act, settled: str, pick: int | None = None, what=None) -> dict:
        """Arm the probe, `act` (which clicks or runs), wait until the kernel's answer is final (`settled`, a
        Python expression) and every part shows its checksums, then read the record."""
        self.page.evaluate("k => window.awProbe.arm(k)", "run" if action == "open" else "click")
        act()
        self.settle(settled)
        expected = self.nb.eval("_aw_bench_expected()")
        self.page.wait_for_function(SHOWS_JS, arg=[probe.PARTS, expected], timeout=self.timeout_s * 1000)
        self.page.wait_for_timeout(300)  # a stray later frame would show up as a change after the answer
        rec = self.page.evaluate("() => window.awProbe.read()")
        assert rec["t0"] is not None, f"{action}: the probe saw no click / run key"
        t0, log = rec["t0"], rec["log"]
        views = {}
        for view in VIEWS:
            views[view] = {"answer_ms": probe.answer_ms(log, t0, view),
                           "final": probe.final_state(log, view)}
            if action == "open":
                views[view]["first_paint_ms"] = probe.first_paint_ms(log, t0, view)
            if pick is not None:
                views[view]["picked_ms"] = probe.picked_ms(log, t0, view, pick)
        ready = [e["paint"] - t0 for e in log if e["view"] == "explorer"]
        run = {"action": action, "mode": mode, "clicked": what, "views": views, "expected": expected, "log_entries": len(log),
               "explorer_ready_ms": ready[0] if ready else None, "load_1min": loadavg()}
        self.runs.append(run)
        print(f"  {action:6s} {mode:6s} " + "  ".join(f"{v} {fmt(views[v]['answer_ms'])}" for v in VIEWS), flush=True)
        return run

    def settle(self, settled: str) -> None:
        try:
            self.nb.wait_for_kernel(settled, timeout_s=self.timeout_s, interval_s=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nthe kernel's parts: {self.nb.eval('_aw_bench_state()')}") from None

    # -- the actions -------------------------------------------------------------------------------------------
    def run_cell(self, index: int, keys: str) -> None:
        self.page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputArea-editor").click()
        self.page.keyboard.press(keys)

    def open(self, mode: str) -> None:
        old = self.nb.eval("id(ex) if 'ex' in globals() else None")
        self.measure("open", mode, lambda: self.run_cell(1, "Control+Enter"), f"_aw_bench_settled({old})")
        self.page.locator(EX).first.wait_for(state="visible")
        layout = self.page.locator(EX).first.get_attribute("data-layout")
        assert layout == "grid", f"the explorer shows {layout}, not the 2x2 grid this benchmark clicks in"

    def click_target(self, row: int, mode: str, measured: bool = True) -> None:
        positions = self.nb.eval("ex.target_positions")
        tok = self.page.locator(f"{EX} .aw-token-matrix .aw-text .aw-tok.aw-target[data-target='{row}']")
        # by position: the flow's rows are not the matrix's (docs/linking.md: rows never pass as numbers)
        settled = (f"_aw_bench_settled() and all(v.target_positions[v.selected_target] == {positions[row]} "
                   f"for v in ex.views.values())")
        self.act_or_measure("target", mode, tok.click, settled, positions[row], measured, {"target": row})

    def click_head(self, layer: int, head: int, mode: str, measured: bool = True) -> None:
        canvas = self.page.locator(f"{EX} .aw-head-grid .aw-hg-canvas")
        cell, left, top = (float(canvas.get_attribute(f"data-{k}")) for k in ("cell", "left", "top"))
        at = {"x": left + (head + 0.5) * cell, "y": top + (layer + 0.5) * cell}
        settled = f"_aw_bench_settled() and ex.views['tokens'].head_split_of == [{layer}, {head}]"
        self.act_or_measure("head", mode, lambda: canvas.click(position=at), settled, None, measured,
                            {"layer": layer, "head": head})

    def clear_head(self) -> None:
        """The matrix's "show <method>" button: the head selection cleared in every view (docs/linking.md)."""
        button = self.page.locator(f"{EX} .aw-token-matrix .aw-head-split button")
        if button.count():
            button.click()
        self.settle("_aw_bench_settled() and ex.views['tokens'].head_split_of == []")

    def click_node(self, node: dict, mode: str, measured: bool = True) -> None:
        def click() -> None:
            graph = self.page.locator(f"{EX} .aw-graph-view")
            graph.locator(".aw-graph-canvas").scroll_into_view_if_needed()
            p = graph.evaluate(f"el => el.awGraph.screenOf({node['id']!r})")
            assert p is not None, f"node {node['id']} is not drawn"
            self.page.mouse.click(p["clientX"], p["clientY"])

        settled = (f"_aw_bench_settled() and ex.views['graph'].selected_node == {node['id']!r} "
                   f"and ex.views['flow'].selected_position == {node['position']}")
        self.act_or_measure("node", mode, click, settled, node["position"], measured, node)

    def act_or_measure(self, action, mode, act, settled, pick, measured, what) -> None:
        if measured:
            self.measure(action, mode, act, settled, pick, what)
        else:  # "elsewhere" before a warm click: done, settled, not recorded
            act()
            self.settle(settled)


# Every part's data-* attributes equal the kernel's answer (its checksums; the matrix's target and head split).
SHOWS_JS = """([parts, expected]) => Object.entries(expected).every(([view, want]) => {
  const el = document.querySelector(`.aw-explorer ${parts[view]}`);
  return el && Object.entries(want).every(([a, v]) => el.getAttribute(`data-${a}`) === v);
})"""


def scenario(bench: Bench, repeats: int) -> None:
    """Every action cold once, then warm `repeats` times (elsewhere and back, each settled before the next)."""
    bench.open("cold")
    bench.click_target(TARGET, "cold")
    for _ in range(repeats):
        bench.click_target(0, "warm", measured=False)
        bench.click_target(TARGET, "warm")
    bench.click_head(*HEAD, "cold")
    for _ in range(repeats):
        bench.clear_head()
        bench.click_head(*HEAD, "warm")
    bench.clear_head()
    nodes = bench.nb.eval("_aw_bench_nodes(2)")
    assert len(nodes) == 2, f"the graph has too few nodes inside layers to click: {nodes}"
    bench.click_node(nodes[0], "cold")
    bench.click_node(nodes[1], "cold", measured=False)
    for _ in range(repeats):
        bench.click_node(nodes[0], "warm")
        bench.click_node(nodes[1], "warm", measured=False)
    bench.open("re-run")


# -- the report ----------------------------------------------------------------------------------------------------
def fmt(ms: float | None) -> str:
    return "–" if ms is None else f"{ms:,.0f}"


ROWS = [  # (action, what, the figure per view): the table's rows, in order
    ("open", "first paint", "first_paint_ms"), ("open", "final answer", "answer_ms"),
    ("target", "mark (pick)", "picked_ms"), ("target", "answer", "answer_ms"),
    ("head", "answer", "answer_ms"),
    ("node", "mark (pick)", "picked_ms"), ("node", "answer", "answer_ms"),
]


def summary(runs: list[dict]) -> list[dict]:
    """One row per action, figure and mode: each view's median over the repeats (cold: the single run)."""
    rows = []
    for action, what, key in ROWS:
        for mode in ("cold", "warm", "re-run"):
            mine = [r for r in runs if r["action"] == action and r["mode"] == mode]
            if not mine:
                continue
            row = {"action": action, "what": what, "mode": mode, "n": len(mine)}
            for view in VIEWS:
                values = [r["views"][view].get(key) for r in mine]
                values = [v for v in values if v is not None]
                row[view] = statistics.median(values) if len(values) == len(mine) else None
            if key == "answer_ms" and action == "open":
                row["explorer_ready"] = statistics.median(r["explorer_ready_ms"] or 0 for r in mine)
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| action | figure | mode | n | " + " | ".join(VIEWS) + " |", "|---|---|---|---|" + "---|" * len(VIEWS)]
    for r in rows:
        lines.append(f"| {r['action']} | {r['what']} | {r['mode']} | {r['n']} | "
                     + " | ".join(fmt(r[v]) for v in VIEWS) + " |")
    return "\n".join(lines)


# -- running it ------------------------------------------------------------------------------------------------
def main() -> int:
    # A SIGTERM (a timeout, a kill) unwinds like Ctrl+C, so the Jupyter server and Chromium are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=tuple(MODELS), default="default")
    parser.add_argument("--repeats", type=int, default=3, help="warm repeats per action (default 3)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one action may take (default 600)")
    parser.add_argument("--max-wait", type=float, default=None,
                        help="seconds to wait for a quiet machine (default: 120, 0 for --model tiny)")
    parser.add_argument("--out", default=None, help="results file (default benchmarks/results/...)")
    args = parser.parse_args()
    out = args.out or str(RESULTS / f"explorer_click_to_paint_{args.model}.json")
    max_wait = args.max_wait if args.max_wait is not None else (0.0 if args.model == "tiny" else 120.0)
    quiet = wait_for_quiet(max_other=0.1, max_wait=max_wait)
    started = time.time()
    runs = measure_all(args.model, args.repeats, args.timeout)
    rows = summary(runs)
    print(f"\nclick-to-paint, ms ({args.model} model, {PROMPT!r}, max_new_tokens=8; cold: single, warm: median of "
          f"{args.repeats}; '–': the part's answer did not change)\n")
    print(table(rows))
    opened = [r for r in rows if r["action"] == "open" and "explorer_ready" in r]
    print("\nthe Explorer's data-ready (every part rendered): " +
          ", ".join(f"{r['mode']} {fmt(r['explorer_ready'])} ms" for r in opened))
    clicked = next((r["clicked"] for r in runs if r["action"] == "node"), None)
    print(f"graph node clicked: {clicked}")
    write_json(out, {"benchmark": "explorer_click_to_paint", "model": args.model, "prompt": PROMPT,
                     "max_new_tokens": 8, "repeats": args.repeats, "machine": quiet, "wall_s": time.time() - started,
                     "summary": rows, "runs": runs})
    return 0


def measure_all(model: str, repeats: int, timeout_s: float) -> list[dict]:
    from playwright.sync_api import sync_playwright

    candidates = [os.environ.get("ATTRWIDGETS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")]
    chromium = next((c for c in candidates if c and os.access(c, os.X_OK)), None)
    if chromium is None:
        raise SystemExit("no chromium (looked for $ATTRWIDGETS_CHROMIUM, /usr/bin/chromium, chromium on PATH)")
    with tempfile.TemporaryDirectory(prefix="aw-click-bench-") as tmp, sync_playwright() as p:
        server = JupyterServer(Path(tmp))
        server.start()
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(60_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            nb = Notebook(server, page, server.write_notebook("click_to_paint.ipynb", cells(model))).open()
            page.evaluate(probe.PROBE_JS, [probe.PARTS, probe.WATCHED])
            bench = Bench(nb, page, timeout_s)
            bench.run_cell(0, "Shift+Enter")
            nb.wait_for_kernel("'handle' in globals()", timeout_s=timeout_s, interval_s=0.5)
            nb.execute(probe.KERNEL_HELPERS)
            scenario(bench, repeats)
            assert not errors, "page errors:\n" + "\n".join(errors)
            nb.close()
            return bench.runs
        finally:
            browser.close()
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
