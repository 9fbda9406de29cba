"""What every benchmark here shares: peak memory, how busy the machine is, waiting for a quiet machine, where
results go.

Benchmarks run as scripts from the repository root (`python benchmarks/<family>/<name>.py`). Each one that
imports from this folder starts with the same line, which puts the repository root first on sys.path, and then
imports by full name (`from benchmarks.harness import ...`, `from benchmarks.graph import graph_bench_runs`):

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `benchmarks.*`

The peer runners in external/ (ct_runner.py, lig_upstream_runner.py) do the same from their own virtual
environments, so this module needs nothing beyond the standard library.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results"  # every benchmark's JSON (ignored by git)

# A plain paragraph, repeated and cut to make prompts of any length (bench_depass.py, bench_estimate.py).
PARAGRAPH = (
    "The history of the city begins with a small fishing village on the river. Over the centuries its "
    "harbour grew, merchants arrived from distant ports, and the town hall was rebuilt three times after "
    "floods and fires. Today visitors walk along the old walls, eat in the market and ask about the bridge. "
)


# -- memory ------------------------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def peak_rss_reset() -> None:
    """Start the peak (VmHWM) again from the current resident memory (Linux), so a job's peak is its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def status_gib(field: str) -> float:
    """A memory figure of /proc/self/status in GiB: "VmRSS" (now) or "VmHWM" (peak since the last reset)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return peak_rss_mb() / 1024.0


# -- how busy the machine is ---------------------------------------------------------------------------------
def cpu_seconds(who=resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def children_cpu_seconds() -> float:
    return cpu_seconds(resource.RUSAGE_CHILDREN)


def machine_busy_seconds() -> float | None:
    """CPU-seconds all processes have used since boot (/proc/stat), to find the CPU others took."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def others_share(seconds: float = 3.0) -> float | None:
    """Share of the machine's CPU used over `seconds` while this script itself idles (= other processes)."""
    a = machine_busy_seconds()
    time.sleep(seconds)
    b = machine_busy_seconds()
    if a is None or b is None:
        return None
    return (b - a) / (seconds * (os.cpu_count() or 1))


def wait_for_quiet(max_other: float, max_wait: float, poll: float = 15.0) -> dict:
    """Wait until other processes use at most `max_other` of the CPU (or `max_wait` seconds have passed: then
    measure anyway and say so); returns what was found, for the results file."""
    start = time.time()
    while True:
        share = others_share()
        load = os.getloadavg()[0]
        met = share is None or share <= max_other
        if met or time.time() - start >= max_wait:
            if not met:
                print(f"  other processes still use {share:.0%} of the CPU after {max_wait:.0f} s: measuring anyway "
                      "(figures are contended)", flush=True)
            return {"others_share_at_start": share, "load_1min": load, "waited_s": time.time() - start, "met": met}
        print(f"  waiting: other processes use {share:.0%} of the CPU (1-min load {load:.2f}) ...", flush=True)
        time.sleep(poll)


# -- results -----------------------------------------------------------------------------------------------
def median_of_runs(results: list[dict]) -> dict:
    """Repeats of one run (each with time_s, peak_rss_mb, rss_after_load_mb and a `run` record) as one: the last
    run's fields, the medians of time and memory, every repeat's figures kept, and the largest CPU share other
    processes took during any of them."""
    res = dict(results[-1])
    res["times_s"] = [r["time_s"] for r in results]
    res["peak_rss_mb_all"] = [r["peak_rss_mb"] for r in results]
    res["time_s"] = float(statistics.median(res["times_s"]))
    res["peak_rss_mb"] = float(statistics.median(res["peak_rss_mb_all"]))
    res["rss_after_load_mb"] = float(statistics.median([r["rss_after_load_mb"] for r in results]))
    res["run"] = {"others_share": max((r["run"]["others_share"] or 0.0) for r in results),
                  "per_repeat": [r["run"] for r in results]}
    return res


def write_json(out, report: dict | list) -> None:
    """The results file (when `out` is given), folders created."""
    if out:
        import json

        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=1))
        print(f"\nwrote {out}")
