"""Attribution graphs: attrwidgets' cost vs prompt length, its batch size, transcoder training throughput, and
circuit-tracer 0.5 side by side on SmolLM2 with the same per-layer transcoder (PLT), in one run.

    flock /tmp/attrwidgets-heavy.lock python benchmarks/graph/bench_graph.py --no-lock   # full run, ~20 min, one lock
    python benchmarks/graph/bench_graph.py                    # the same, taking the lock for each measurement
    python benchmarks/graph/bench_graph.py --quick            # smoke test: 16 tokens, tiny settings, no circuit-tracer
    python benchmarks/graph/bench_graph.py --sections ct      # only some of: scale, batch, ct, train

Every measurement is a fresh subprocess under the shared heavy lock (/tmp/attrwidgets-heavy.lock): the script
takes it (flock(2)) for each one, or, with --no-lock, the caller holds it for the whole run (wrapped in `flock`
WITHOUT --no-lock the script would wait on itself). Before each measurement it waits
until other processes use less than --max-other of the CPU, and is repeated when they took more meanwhile.
Time: perf_counter around aw.attribution_graph (ours) and circuit-tracer's attribute() (its runner's
`attribute_s`); model and transcoder loading excluded on both sides, no warm-up on either. Peak memory: the
process's ru_maxrss (load + graph), and its rise over the RSS after loading. torch threads = --threads on both.

Prompts: natural text (PASSAGE) as SmolLM2 token ids, BOS id 1 first, cut to 16, 64 and 128 ids; the same
list goes to both sides (neither adds a BOS). The 16-id prompt is the lead's hand check (/tmp/ct_test/g16.json).
Feature graphs keep every active feature at 16 tokens and the max_feature_nodes in --max-nodes beyond (a graph
with all of them would not fit memory); component graphs (transcoder=None) use the same limits.

Sections:
  scale  ours: components and transcoder graphs at 16, 64, 128 tokens (--batch-size, default DEFAULT_BATCH).
  batch  ours: the 16-token transcoder graph at batch sizes --batches; the fastest is "our best batch size".
  ct     circuit-tracer (benchmarks/external/ct_runner.py in /work/venvs/ct): its batch size picked by a short sweep
         (16 tokens, max_feature_nodes 1024, --ct-batches) unless --ct-batch; then both sides at --ct-lengths
         (128 only if the time left in --budget-min allows), each with its own best batch size (circuit-tracer's
         capped to batch * tokens <= 8192 for memory, see ct_batch_cap), the same ids,
         max_feature_nodes, max_logits 10 and logit_prob 0.95. Adjacency agreement after matching nodes by
         (kind, layer, position, feature) over the nodes both have (with max_feature_nodes the kept features
         depend on the batch size: both rank greedily, re-ranking every 4 batches, so the overlap is reported).
  train  aw.train_transcoder briefly (--train-steps on a small harvest from PASSAGE): tokens/s; plus the
         figures the training benchmark wrote (benchmarks/results/train_transcoder*.json), if there.
PLT: --plt, else the trained ~/.cache/attrwidgets/transcoders/smollm2-plt-ct if it exists, else the random one
(/tmp/ct_test/random_plt, made by benchmarks/graph/ct_random_plt.py if missing). The output says which.
Results: markdown on stdout, benchmarks/results/bench_graph.{json,md} and /work/notes/readme_bench_graph.md
(--quick writes none unless --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `benchmarks.*`
from benchmarks.graph import graph_bench_report as report_md
from benchmarks.graph.graph_bench_sections import (
    LOGIT_PROB,
    MAX_LOGITS,
    PASSAGE,
    Bench,
    parse_max_nodes,
    pick_plt,
    prompt_ids,
    section_batch,
    section_ct,
    section_scale,
    section_train,
)
from benchmarks.harness import RESULTS

NOTES = Path("/work/notes/readme_bench_graph.md")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--quick", action="store_true", help="16 tokens, tiny settings, no circuit-tracer, 1 repeat"
    )
    p.add_argument(
        "--sections", default="scale,batch,ct,train", help="comma-separated: scale, batch, ct, train"
    )
    p.add_argument("--plt", default=None, help="PLT folder in circuit-tracer's layout (default: see above)")
    p.add_argument("--lengths", default="16,64,128")
    p.add_argument(
        "--max-nodes", default="16=none,64=2000,128=4000", help="max_feature_nodes per prompt length"
    )
    p.add_argument(
        "--batch-size", type=int, default=None, help="ours in 'scale' (default: attribution.DEFAULT_BATCH)"
    )
    p.add_argument("--batches", default="32,64,128,256")
    p.add_argument("--ct-lengths", default="16,64,128")
    p.add_argument("--ct-batch", type=int, default=None, help="circuit-tracer's batch size (default: swept)")
    p.add_argument("--ct-batches", default="32,64,128,256")
    p.add_argument(
        "--budget-min", type=float, default=20.0, help="skip circuit-tracer at 128 tokens beyond this"
    )
    p.add_argument("--train-steps", type=int, default=100)
    p.add_argument("--train-features", type=int, default=2304)
    p.add_argument("--train-batch-tokens", type=int, default=256)
    p.add_argument("--train-max-tokens", type=int, default=4096)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--repeats", type=int, default=None, help="fresh processes per run of ours (default 3; quick 1)"
    )
    p.add_argument("--batch-repeats", type=int, default=2, help="fresh processes per batch-sweep run")
    p.add_argument(
        "--repeat-limit-s", type=float, default=30.0, help="a run slower than this is measured once"
    )
    p.add_argument("--ct-repeats", type=int, default=1)
    p.add_argument("--max-other", type=float, default=0.15, help="largest CPU share other processes may take")
    p.add_argument(
        "--max-wait", type=float, default=None, help="seconds to wait for quiet (default 120; quick 0)"
    )
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--no-lock", dest="lock", action="store_false", help="you already hold the heavy lock")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/bench_graph.json)")
    p.add_argument("--resume", action="store_true", help="keep the sections the JSON at --out already holds")
    args = p.parse_args()
    sections = set(args.sections.split(","))
    if args.quick:
        args.lengths, args.max_nodes, args.batches = "16", "16=200", "64"
        args.train_steps, args.train_features, args.train_max_tokens = 20, 256, 1024
        sections -= {"ct", "batch"}
        args.repeats = args.repeats or 1
        args.max_wait = 0 if args.max_wait is None else args.max_wait
    args.repeats = args.repeats or 3
    args.max_wait = 120 if args.max_wait is None else args.max_wait
    args.lengths = [int(x) for x in args.lengths.split(",")]
    args.ct_lengths = [int(x) for x in args.ct_lengths.split(",")] if "ct" in sections else []
    args.max_nodes = parse_max_nodes(args.max_nodes)
    args.batches = [int(x) for x in args.batches.split(",")]
    args.ct_batches = [int(x) for x in args.ct_batches.split(",")]
    from attrwidgets.core.graph.attribution import DEFAULT_BATCH

    out_path = args.out or (None if args.quick else str(RESULTS / "bench_graph.json"))
    started = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="bench_graph_"))
    try:
        plt, plt_which = pick_plt(args, tmp)
        print(f"PLT: {plt_which}", flush=True)
        bench = Bench(args, tmp, plt)
        result: dict = {
            "settings": {
                "plt": plt,
                "plt_which": plt_which,
                "lengths": args.lengths,
                "max_feature_nodes": args.max_nodes,
                "max_logits": MAX_LOGITS,
                "logit_prob": LOGIT_PROB,
                "threads": args.threads,
                "repeats": args.repeats,
                "repeat_limit_s": args.repeat_limit_s,
                "ct_repeats": args.ct_repeats,
                "default_batch": DEFAULT_BATCH,
                "quick": args.quick,
                "sections": sorted(sections),
                "max_other": args.max_other,
                "passage": PASSAGE,
                "prompt_ids": {n: prompt_ids(n) for n in sorted(set(args.lengths) | set(args.ct_lengths))},
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "load_at_start": os.getloadavg(),
                },
            }
        }
        our_best = DEFAULT_BATCH
        jobs = {
            "scale": lambda: section_scale(bench, DEFAULT_BATCH),
            "batch": lambda: section_batch(bench),
            "ct": lambda: section_ct(bench, our_best, started),
            "train": lambda: section_train(bench),
        }
        earlier = {}
        if args.resume and out_path and Path(out_path).exists():  # an interrupted run: keep what it measured
            earlier = json.loads(Path(out_path).read_text())
        for name, job in jobs.items():
            if name not in sections:
                continue
            if isinstance(earlier.get(name), list) or "error" not in earlier.get(name, {"error": 1}):
                print(f"{name}: kept from the earlier run in {out_path}", flush=True)
                result[name] = earlier[name]
                result["settings"].setdefault("resumed_sections", []).append(name)
                if name == "batch":
                    our_best = result[name]["best"]
                continue
            try:
                result[name] = job()
            except (RuntimeError, OSError, ValueError, KeyError, subprocess.CalledProcessError) as exc:
                # one failed section must not lose the others' figures
                print(f"{name}: FAILED: {exc}", flush=True)
                result[name] = {"error": f"{type(exc).__name__}: {exc}"[-2000:]}
            if name == "batch" and "best" in result[name]:
                our_best = result[name]["best"]
            if out_path:  # partial results survive a crash or an interrupt
                Path(out_path).parent.mkdir(parents=True, exist_ok=True)
                Path(out_path).write_text(json.dumps(result, indent=1, default=str))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["wall_s"] = time.time() - started
    result["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    text = report_md.markdown(result)
    print("\n" + text)
    if out_path:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(json.dumps(result, indent=1, default=str))
        Path(out_path).with_suffix(".md").write_text(text)
        if not args.out:
            NOTES.write_text("# Graph benchmark (benchmarks/graph/bench_graph.py)\n\n" + text)
        print(
            f"wrote {out_path} and {Path(out_path).with_suffix('.md')}"
            + ("" if args.out else f" and {NOTES}")
        )


if __name__ == "__main__":
    main()
