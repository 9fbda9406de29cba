"""Token-level DePass and head contributions on the default model: time and peak memory against one forward.

    python benchmarks/depass/bench_depass.py                      # T = 64, 128, 256, 512 (one subprocess each)
    python benchmarks/depass/bench_depass.py --lengths 64 --quick # smoke test
    python benchmarks/depass/bench_depass.py --device cuda --dtype bfloat16

Job per length T: SmolLM2-135M-Instruct (fp32 on the CPU), a plain prompt of exactly T tokens (a paragraph
repeated and cut), then
  * forward: one model forward of the same T tokens (no grad), the unit of cost;
  * depass: aw.depass(model, prompt, level="token") — T + 1 components through 30 layers, softmax rule;
  * heads: aw.head_contributions(model, prompt) — head level at every layer for the last position.
Each length runs in its own subprocess (model load excluded; one warm-up of the forward), so peak RSS
(Linux VmHWM, reset through /proc/self/clear_refs before each job) belongs to that job alone. Run it on a
quiet machine: it prints the 1-minute load before each length. Results: stdout and
benchmarks/results/depass.json.
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


def timed(fn, repeats: int = 1):
    peak_rss_reset()
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, status_gib("VmHWM"), out


def one_length(length: int, device: str, dtype: str) -> dict:
    import torch

    import attrwidgets as aw

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    model = aw.load_model(device=device, dtype=dtype)
    ids = model.tokenizer(PARAGRAPH * (1 + length // 40))["input_ids"][:length]
    text = model.tokenizer.decode(ids)  # the prompt as a user passes it; re-encoding may differ by a token
    x = torch.tensor([model.tokenizer(text)["input_ids"]], device=model.device)
    n = x.shape[1]

    def forward():
        with torch.no_grad():
            model.model(input_ids=x, use_cache=False)
        if model.device.type == "cuda":
            torch.cuda.synchronize()

    forward()  # warm-up
    t_fwd, _, _ = timed(forward, repeats=3)
    t_dep, rss_dep, d = timed(lambda: aw.depass(model, text, progress=False))
    t_heads, rss_heads, r = timed(lambda: aw.head_contributions(model, text, progress=False))
    return {"T": n, "forward_s": t_fwd, "depass_s": t_dep, "depass_peak_rss_gib": rss_dep,
            "depass_over_forward": t_dep / t_fwd, "depass_completeness_error": d.completeness_error,
            "heads_s": t_heads, "heads_peak_rss_gib": rss_heads, "heads_completeness_error": r.completeness_error,
            "device": str(model.device), "dtype": dtype}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="64,128,256,512")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--quick", action="store_true", help="only the first length")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS / "depass.json"))
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(one_length(args.child, args.device, args.dtype)))
        return
    lengths = [int(x) for x in args.lengths.split(",")][: 1 if args.quick else None]
    rows = []
    for length in lengths:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"T={length}: 1-minute load {load:.2f} before the run", flush=True)
        proc = subprocess.run([sys.executable, __file__, "--child", str(length), "--device", args.device,
                               "--dtype", args.dtype], check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"T={length} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"  T={r['T']:4d}  forward {r['forward_s'] * 1e3:7.1f} ms  depass {r['depass_s']:7.2f} s "
              f"({r['depass_over_forward']:7.0f}x, peak RSS {r['depass_peak_rss_gib']:.2f} GiB, "
              f"error {r['depass_completeness_error']:.1e})  heads {r['heads_s']:6.2f} s "
              f"(peak RSS {r['heads_peak_rss_gib']:.2f} GiB)", flush=True)
    write_json(args.out, rows)


if __name__ == "__main__":
    main()
