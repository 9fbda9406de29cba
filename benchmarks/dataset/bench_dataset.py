"""aw.attribute_dataset on 200 real prompts with the default model: the local engine, Ray with 1 and 2 actors,
and a plain Inseq loop over the same prompts, side by side in one run (issue 19 §3).

    python benchmarks/dataset/bench_dataset.py [--n 200] [--n-ig 200] [--methods saliency,integrated_gradients]

Each engine runs in a fresh process (its peak memory is its own): examples/s over the loop (the model load and
Ray's start are reported apart), and peak RSS per worker (the process for local and Inseq; each Ray actor's
peak, sampled from /proc). Writes results/dataset.json and prints the table for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import RESULTS, write_json

INSEQ_PYTHON = os.environ.get("INSEQ_PYTHON", "/work/venvs/inseq/bin/python")
# IG: 16 Gauss-Legendre steps, Inseq's (captum's) rule and count; attrwidgets' default (adaptive, refined to
# a 0.5% completeness error) does more work for accuracy and is not what is compared here.
SETTINGS = {"max_new_tokens": 4, "n_steps": 16, "quadrature": "gauss_legendre"}


def one_engine(engine: str, workers: int, method: str, prompts_file: str, model_dir: str) -> dict:
    """Run in a child process: attribute_dataset once, timed; prints a JSON line."""
    import threading

    import attrwidgets as aw

    prompts = json.loads(Path(prompts_file).read_text())
    options = ({"n_steps": SETTINGS["n_steps"], "quadrature": SETTINGS["quadrature"]}
               if method == "integrated_gradients" else {})
    peaks: dict[int, float] = {}
    stop = threading.Event()

    def sample_actors():  # each Ray actor's own peak RSS (VmHWM), read from /proc while it runs
        while not stop.wait(0.5):
            for pid in os.listdir("/proc"):
                try:
                    if pid.isdigit() and b"RayAttributor" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                            if line.startswith("VmHWM:"):
                                peaks[int(pid)] = max(peaks.get(int(pid), 0), int(line.split()[1]) / 1024)
                except OSError:
                    continue

    if engine == "ray":
        import ray

        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - start
        threading.Thread(target=sample_actors, daemon=True).start()
    warm = tempfile.mkdtemp()
    aw.attribute_dataset(prompts[:2], model=model_dir, method=method, out=warm, engine=engine, workers=workers,
                         max_new_tokens=SETTINGS["max_new_tokens"], progress=False, **options)
    out = tempfile.mkdtemp()
    start = time.perf_counter()
    ds = aw.attribute_dataset(prompts, model=model_dir, method=method, out=out, engine=engine, workers=workers,
                              max_new_tokens=SETTINGS["max_new_tokens"], progress=False, **options)
    seconds = time.perf_counter() - start
    stop.set()
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"seconds": seconds, "examples": len(ds), "failed": len(ds.failed()),
              "peak_mib": max(peaks.values()) if peaks else own, "driver_peak_mib": own}
    if engine == "ray":
        result["ray_init_s"] = ray_start
    print(json.dumps(result))


def run_child(args: list[str], python: str = sys.executable) -> dict:
    done = subprocess.run([python, *args], capture_output=True, text=True, check=False, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": done.stderr[-1500:]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--n-ig", type=int, default=None, help="prompts for IG (default: --n; IG is ~10x slower)")
    parser.add_argument("--methods", default="saliency,integrated_gradients")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine, workers, method, prompts_file, model_dir = args.child
        one_engine(engine, int(workers) or None, method, prompts_file, model_dir)
        return
    from attrwidgets.packaged_models import DEFAULT, packaged_folder
    from benchmarks.dataset.prompts import prompts

    model_dir = str(packaged_folder(DEFAULT))
    me = str(Path(__file__).relative_to(ROOT))
    rows = {}
    for method in args.methods.split(","):
        n = args.n_ig if method == "integrated_gradients" and args.n_ig else args.n
        prompts_file = Path(tempfile.mkdtemp()) / "prompts.json"
        prompts_file.write_text(json.dumps(prompts(n)))
        for name, child in (("local", ["local", "0"]), ("ray, 1 actor", ["ray", "1"]), ("ray, 2 actors", ["ray", "2"])):
            rows[(method, name)] = run_child([me, "--child", *child, method, str(prompts_file), model_dir])
            print(method, name, rows[(method, name)], flush=True)
        rows[(method, "inseq loop")] = run_child(
            ["benchmarks/dataset/inseq_loop.py", str(prompts_file), model_dir, method,
             str(SETTINGS["max_new_tokens"]), str(SETTINGS["n_steps"])], python=INSEQ_PYTHON)
        print(method, "inseq loop", rows[(method, "inseq loop")], flush=True)
    lines = ["| method | engine | examples/s | vs Inseq loop | peak RSS per worker |", "|---|---|---|---|---|"]
    for (method, name), r in rows.items():
        if "error" in r:
            lines.append(f"| {method} | {name} | failed | | |")
            continue
        rate = r["examples"] / r["seconds"]
        base = rows[(method, "inseq loop")]
        ratio = rate / (base["examples"] / base["seconds"]) if "error" not in base else float("nan")
        lines.append(f"| {method} | {name} | {rate:.2f} | {ratio:.2f}x | {r['peak_mib']:.0f} MiB |")
    print("\n".join(lines))
    write_json(RESULTS / "dataset.json", {"settings": {**SETTINGS, "n": args.n, "n_ig": args.n_ig or args.n},
                                          "rows": {f"{m} / {e}": r for (m, e), r in rows.items()}, "table": lines})


if __name__ == "__main__":
    main()
