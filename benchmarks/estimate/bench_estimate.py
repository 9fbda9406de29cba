"""aw.estimate against real runs, and the longest prompt of every family, on the default model.

    python benchmarks/estimate/bench_estimate.py            # every job below (about 35 minutes on 2 cores)
    python benchmarks/estimate/bench_estimate.py --quick    # the 256-token jobs only
    python benchmarks/estimate/bench_estimate.py --only depass_token,saliency

Each (job, length) runs in its own subprocess: SmolLM2-135M-Instruct (fp32 on the CPU, 2 torch threads), a
prompt of exactly T tokens (token ids, a paragraph repeated and cut), aw.estimate(...) first, then the call.
Measured: wall time of the call and its peak memory above the loaded model (Linux VmHWM, reset through
/proc/self/clear_refs after the estimate, minus VmRSS at that moment). A call the package refuses up front
(it would not fit the memory available) is reported as refused, with the time the refusal took. The ratios
measured / estimated must lie within [0.5, 2] for the estimate to count as right (issue: "within 2x").
Run it on a quiet machine: it prints the 1-minute load before each job. Results: stdout and
benchmarks/results/estimate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `benchmarks.*`
from benchmarks.harness import PARAGRAPH, RESULTS, peak_rss_reset, status_gib, write_json

IG = {"n_steps": 4, "quadrature": "gauss_legendre"}  # a fixed node count: the estimate's count is exact
# name -> (function, options, lengths)
JOBS = {
    "saliency": ("attribute", {"method": "saliency", "max_new_tokens": 1}, (256, 1024, 2048)),
    "attention": ("attribute", {"method": "attention", "max_new_tokens": 1}, (256, 1024, 2048)),
    "integrated_gradients": ("attribute", {"method": "integrated_gradients", "max_new_tokens": 1, **IG},
                             (256, 1024, 2048)),
    "layer_ig": ("layer_ig", {"layer": 10, "max_new_tokens": 1, **IG}, (256, 1024, 2048)),
    "depass_token": ("depass", {}, (256, 512, 2048)),
    "depass_head": ("depass", {"level": "head", "layer": 10}, (256, 1024, 2048)),
    "head_contributions": ("head_contributions", {}, (256, 1024, 2048)),
    "graph": ("attribution_graph", {"max_feature_nodes": 128}, (256, 1024, 2048)),
    "lig": ("lig", {"n_steps": 4, "granularity": "layer", "layers": [10], "target_tokens": [-1]}, (256, 1024, 2048)),
    "dlig": ("dlig", {"gen_length": 8, "steps": 2, "n_steps": 4, "mask_token_id": 0}, (256, 512, 2048)),
}


def run_call(aw, fn_name: str, model, prompt, options: dict):
    options = dict(options)
    if fn_name == "attribute":
        return aw.attribute(model, prompt, progress=False, **options)
    if fn_name == "lig":
        options["target_tokens"] = [len(model.tokenizer(prompt)["input_ids"]) - 1]
        return aw.lig(model, prompt, **options)
    if fn_name in ("layer_ig", "depass", "head_contributions", "attribution_graph", "dlig"):
        return getattr(aw, fn_name)(model, prompt, progress=False, **options)
    raise SystemExit(f"unknown function {fn_name}")


def one_job(name: str, length: int) -> dict:
    import torch

    import attrwidgets as aw
    from attrwidgets.errors import AttrWidgetsError

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    model = aw.load_model()
    fn_name, options, _ = JOBS[name]
    n_new = options.get("gen_length", options.get("max_new_tokens", 0))
    ids = model.tokenizer(PARAGRAPH * (1 + length // 40), add_special_tokens=False)["input_ids"][: length - n_new]
    prompt = model.tokenizer.decode(ids) if fn_name == "lig" else ids  # lig takes text (an encoder's input)
    est_options = {k: v for k, v in options.items() if k != "target_tokens"}
    if fn_name == "lig":
        est_options["target_tokens"] = [0]
    start = time.perf_counter()
    est = aw.estimate(fn_name, model, prompt, **est_options)
    estimate_s = time.perf_counter() - start
    base = status_gib("VmRSS")
    peak_rss_reset()
    start = time.perf_counter()
    try:
        run_call(aw, fn_name, model, prompt, options)
        refused = ""
    except AttrWidgetsError as exc:
        if "needs about" not in str(exc) and "This graph needs about" not in str(exc):
            raise
        refused = str(exc)
    seconds = time.perf_counter() - start
    peak = status_gib("VmHWM") - base
    return {"job": name, "function": fn_name, "T": length, "estimated_s": est.seconds,
            "estimated_gib": est.peak_bytes / 2**30, "measured_s": seconds, "measured_gib": peak,
            "refused": refused, "estimate_call_s": estimate_s, "model_gib": base}


def report(r: dict) -> str:
    head = f"{r['job']:22s} T={r['T']:5d}  estimate {r['estimated_s']:8.1f} s {r['estimated_gib']:6.2f} GiB"
    if r["refused"]:
        return f"{head}  | refused up front in {r['measured_s']:.1f} s: {r['refused'][:110]}"
    ts, tm = r["measured_s"] / r["estimated_s"], r["measured_gib"] / max(r["estimated_gib"], 1e-9)
    ok = "ok" if 0.5 <= ts <= 2 and 0.5 <= tm <= 2 else "OUTSIDE 2x"
    return (f"{head}  | measured {r['measured_s']:8.1f} s {r['measured_gib']:6.2f} GiB  | ratio time {ts:4.2f} "
            f"memory {tm:4.2f}  {ok}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the 256-token jobs only")
    parser.add_argument("--only", default="", help="comma-separated job names")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS / "estimate.json"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_job(args.child[0], int(args.child[1]))))
        return
    names = [n for n in JOBS if not args.only or n in args.only.split(",")]
    rows = []
    for name in names:
        for length in JOBS[name][2][: 1 if args.quick else None]:
            load = os.getloadavg()[0]
            print(f"[load {load:.2f}] {name} T={length}", flush=True)
            proc = subprocess.run([sys.executable, __file__, "--child", name, str(length)], check=False,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"  FAILED (exit {proc.returncode}): {proc.stderr[-1500:]}", flush=True)
                rows.append({"job": name, "T": length, "failed": proc.stderr[-1500:]})
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print("  " + report(rows[-1]), flush=True)
    write_json(args.out, rows)


if __name__ == "__main__":
    main()
