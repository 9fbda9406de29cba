"""Attribution graphs: attrwidgets' cost vs prompt length, its batch size, transcoder training throughput, and
circuit-tracer 0.5 side by side on SmolLM2 with the same per-layer transcoder (PLT), in one run.

    flock /tmp/attrwidgets-heavy.lock python benchmarks/bench_graph.py --no-lock   # full run, ~20 min, one lock
    python benchmarks/bench_graph.py                    # the same, taking the lock for each measurement
    python benchmarks/bench_graph.py --quick            # smoke test: 16 tokens, tiny settings, no circuit-tracer
    python benchmarks/bench_graph.py --sections ct      # only some of: scale, batch, ct, train

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
  ct     circuit-tracer (benchmarks/ct_runner.py in /work/venvs/ct): its batch size picked by a short sweep
         (16 tokens, max_feature_nodes 1024, --ct-batches) unless --ct-batch; then both sides at --ct-lengths
         (128 only if the time left in --budget-min allows), each with its own best batch size (circuit-tracer's
         capped to batch * tokens <= 8192 for memory, see ct_batch_cap), the same ids,
         max_feature_nodes, max_logits 10 and logit_prob 0.95. Adjacency agreement after matching nodes by
         (kind, layer, position, feature) over the nodes both have (with max_feature_nodes the kept features
         depend on the batch size: both rank greedily, re-ranking every 4 batches, so the overlap is reported).
  train  aw.train_transcoder briefly (--train-steps on a small harvest from PASSAGE): tokens/s; plus the
         figures the training benchmark wrote (benchmarks/results/train_transcoder*.json), if there.
PLT: --plt, else the trained ~/.cache/attrwidgets/transcoders/smollm2-plt-ct if it exists, else the random one
(/tmp/ct_test/random_plt, made by benchmarks/ct_random_plt.py if missing). The output says which.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import graph_bench_report as report_md  # noqa: E402
import graph_bench_runs as runs  # noqa: E402

CT_PYTHON = os.environ.get("CT_VENV", "/work/venvs/ct") + "/bin/python"
TRAINED_PLT = Path.home() / ".cache" / "attrwidgets" / "transcoders" / "smollm2-plt-ct"
LEAD_RANDOM_PLT = Path("/tmp/ct_test/random_plt")
NOTES = Path("/work/notes/readme_bench_graph.md")
PASSAGE = (
    "The capital of France is Paris, and the capital of Germany is the city of Berlin. Both cities sit on rivers: "
    "the Seine runs through Paris and the Spree through Berlin. Every year millions of visitors walk along their "
    "banks, visit museums, and eat in small restaurants that serve food from every region of the country. In the "
    "spring the parks fill with families, students read on benches, and musicians play near the bridges until late "
    "in the evening. Trains connect the two capitals in about eight hours, so many travellers see both on one trip, "
    "and they often say that each city has its own rhythm. Paris feels older and grander; Berlin feels younger.")
MAX_LOGITS, LOGIT_PROB = 10, 0.95


def prompt_ids(n: int) -> list[int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path.home() / ".cache" / "attrwidgets" / "smollm2-135m-instruct" / "tokenizer.json"))
    ids = [1] + tok.encode(PASSAGE, add_special_tokens=False).ids
    if len(ids) < n:
        sys.exit(f"PASSAGE has only {len(ids)} tokens; {n} asked")
    return ids[:n]


def parse_max_nodes(text: str) -> dict[int, int | None]:
    out = {}
    for part in text.split(","):
        n, v = part.split("=")
        out[int(n)] = None if v.lower() in ("none", "all") else int(v)
    return out


def pick_plt(args, tmp_root: Path) -> tuple[str, str]:
    if args.plt:
        return args.plt, f"given ({args.plt})"
    if (TRAINED_PLT / "config.yaml").exists():
        return str(TRAINED_PLT), "trained SmolLM2 PLT (~/.cache/attrwidgets/transcoders/smollm2-plt-ct)"
    if (LEAD_RANDOM_PLT / "config.yaml").exists():
        return str(LEAD_RANDOM_PLT), ("RANDOM PLT (512 features/layer, L0 ~30, benchmarks/ct_random_plt.py seed 0; "
                                      "the trained one did not exist)")
    out = tmp_root / "random_plt"
    subprocess.run([sys.executable, str(HERE / "ct_random_plt.py"), "--out", str(out)], check=True)
    return str(out), "RANDOM PLT (512 features/layer, L0 ~30, made now by benchmarks/ct_random_plt.py seed 0)"


class Bench:
    """Runs measurements, caching them by their settings so that one run serves several tables."""

    def __init__(self, args, tmp: Path, plt: str):
        self.args, self.tmp, self.plt = args, tmp, plt
        self.cache: dict[str, dict] = {}

    def ours(self, n: int, transcoder: bool, max_nodes, batch: int, repeats: int | None = None) -> dict:
        key = f"ours_{'plt' if transcoder else 'components'}_{n}tok_mfn{max_nodes}_b{batch}"
        if key in self.cache:
            return self.cache[key]
        npz = str(self.tmp / f"{key}.npz") if transcoder and n in self.args.ct_lengths else None
        spec = {"job": "graph", "ids": prompt_ids(n), "transcoder": self.plt if transcoder else None,
                "max_feature_nodes": max_nodes, "batch_size": batch, "max_logits": MAX_LOGITS, "logit_prob": LOGIT_PROB,
                "threads": self.args.threads, "npz": npz}
        cmd = [sys.executable, str(HERE / "graph_bench_runs.py"), "--child", json.dumps(spec)]
        res = runs.repeated(key, cmd, runs.parse_json_stdout, self.args, repeats or self.args.repeats)
        res.update(side="attrwidgets", graph="transcoder" if transcoder else "components", max_feature_nodes=max_nodes,
                   batch_size=batch, npz=npz)
        self.cache[key] = res
        return res

    def ct(self, n: int, max_nodes, batch: int, keep_npz: bool) -> dict:
        key = f"ct_{n}tok_mfn{max_nodes}_b{batch}"
        if key in self.cache:
            return self.cache[key]
        out = self.tmp / f"{key}.npz"
        cmd = [CT_PYTHON, str(HERE / "ct_runner.py"), "--transcoder-dir", self.plt,
               "--prompt-ids", ",".join(map(str, prompt_ids(n))), "--batch-size", str(batch),
               "--max-logits", str(MAX_LOGITS), "--logit-prob", str(LOGIT_PROB), "--threads", str(self.args.threads),
               "--no-scores", "--out", str(out)]
        if max_nodes is not None:
            cmd += ["--max-feature-nodes", str(max_nodes)]

        def parse(_proc):
            meta = json.loads(out.with_suffix(".json").read_text())
            t = meta["timing"]
            return {"time_s": t["attribute_s"], "peak_rss_mb": t["peak_rss_mb"], "rss_after_load_mb": t["rss_after_load_mb"],
                    "load_s": t["load_s"], "phases": t["phases"], "phase_calls": t["phase_calls"], "n_pos": meta["n_pos"],
                    "n_nodes": meta["n_nodes"], "node_counts": meta["node_counts"],
                    "active_candidates": meta["n_active_features"], "logits": meta["logits"],
                    "input_ids": meta["prompt"]["input_ids"], "bos_prepended": meta["prompt"]["bos_prepended"],
                    "versions": meta.get("versions")}

        res = runs.repeated(key, cmd, parse, self.args, self.args.ct_repeats)
        res.update(side="circuit-tracer", graph="transcoder", max_feature_nodes=max_nodes, batch_size=batch,
                   npz=str(out) if keep_npz else None)
        if not keep_npz:
            out.unlink(missing_ok=True)
        self.cache[key] = res
        return res


def section_scale(b: Bench, default_batch: int) -> list[dict]:
    rows = []
    print(f"scale: ours, batch {b.args.batch_size or default_batch}", flush=True)
    for n in b.args.lengths:
        for transcoder in (False, True):
            rows.append(b.ours(n, transcoder, b.args.max_nodes.get(n), b.args.batch_size or default_batch))
    return rows


def section_batch(b: Bench) -> dict:
    print(f"batch: ours, 16-token transcoder graph, batches {b.args.batches}", flush=True)
    n = 16
    table = [b.ours(n, True, b.args.max_nodes.get(n), batch, repeats=b.args.batch_repeats) for batch in b.args.batches]
    best = min(table, key=lambda r: r["time_s"])
    return {"runs": table, "best": best["batch_size"]}


def ct_batch_cap(n_pos: int) -> int:
    """circuit-tracer's forward keeps `batch` copies of the prompt's graph (~0.5 MB per token and copy on SmolLM2):
    512 copies of 16 tokens peak at 7 GB, so beyond 16 tokens its batch is capped to keep batch * n_pos <= 8192
    (a user on a 24 GiB machine must do the same; its time per row hardly depends on the batch)."""
    cap = 8192 // n_pos
    return max(16, 1 << (cap.bit_length() - 1))


def section_ct(b: Bench, our_batch: int, started: float) -> dict:
    args = b.args
    out: dict = {"pairs": []}
    if not Path(CT_PYTHON).exists():
        out["missing"] = f"{CT_PYTHON} not found: build it with bash benchmarks/ct_env.sh"
        print("ct: " + out["missing"], flush=True)
        return out
    ct_batch = args.ct_batch
    if ct_batch is None:
        print(f"ct: circuit-tracer batch sweep (16 tokens, max_feature_nodes 1024, batches {args.ct_batches})", flush=True)
        sweep = [b.ct(16, 1024, batch, keep_npz=False) for batch in args.ct_batches]
        out["ct_batch_sweep"] = sweep
        ct_batch = min(sweep, key=lambda r: r["time_s"])["batch_size"]
    out["ct_batch"], out["our_batch"] = ct_batch, our_batch
    for n in args.ct_lengths:
        mfn = args.max_nodes.get(n)
        elapsed = time.time() - started
        if n >= 128 and out["pairs"]:
            last = out["pairs"][-1]
            grow = (n / last["n_pos"]) * ((mfn or 1) / (last["max_feature_nodes"] or 1))
            estimate = last["ct"]["run"]["per_repeat"][0]["subprocess_wall_s"] * grow
            if elapsed + estimate > args.budget_min * 60:
                out.setdefault("skipped", []).append(
                    f"{n} tokens: circuit-tracer estimated at {estimate:.0f} s, {elapsed / 60:.1f} of the "
                    f"{args.budget_min} min budget spent")
                print(f"ct: skipping {n} tokens ({out['skipped'][-1]})", flush=True)
                continue
        batch = min(ct_batch, ct_batch_cap(n))
        print(f"ct: {n} tokens, max_feature_nodes {mfn}, circuit-tracer batch {batch}", flush=True)
        ct = b.ct(n, mfn, batch, keep_npz=True)
        ours = b.ours(n, True, mfn, our_batch)
        cmp_ = subprocess.run([sys.executable, str(HERE / "graph_bench_runs.py"), "--compare", ours["npz"], ct["npz"]],
                              check=True, capture_output=True, text=True)
        agreement = json.loads(cmp_.stdout.strip().splitlines()[-1])
        ids_equal = ct["input_ids"] == prompt_ids(n)
        print(f"    max |diff| {agreement['max_abs_diff']:.3g} (max |A| {agreement['max_abs_ct']:.3g}), "
              f"circuit-tracer / ours = {ct['time_s'] / ours['time_s']:.1f}x", flush=True)
        out["pairs"].append({"n_pos": n, "max_feature_nodes": mfn, "ours": ours, "ct": ct, "agreement": agreement,
                             "same_input_ids": ids_equal, "time_ratio_ct_over_ours": ct["time_s"] / ours["time_s"],
                             "peak_ratio_ct_over_ours": ct["peak_rss_mb"] / ours["peak_rss_mb"]})
        for r in (ct, ours):
            if r.get("npz"):
                Path(r["npz"]).unlink(missing_ok=True)
    return out


def section_train(b: Bench) -> dict:
    out: dict = {"helper_results": read_training_results()}
    if not (HERE.parent / "attrwidgets" / "core" / "graph" / "train.py").exists():
        out["missing"] = "attrwidgets/core/graph/train.py is missing: no training measurement"
        print("train: " + out["missing"], flush=True)
        return out
    a = b.args
    print(f"train: aw.train_transcoder, {a.train_steps} steps, {a.train_features} features, batch_tokens "
          f"{a.train_batch_tokens}", flush=True)
    sentences = [s.strip() + "." for s in PASSAGE.replace(";", ".").replace(":", ".").split(".") if s.strip()]
    texts = [" ".join(sentences[i:] + sentences[:i]) for i in range(len(sentences))] * 4
    spec = {"job": "train", "texts": texts, "steps": a.train_steps, "n_features": a.train_features,
            "batch_tokens": a.train_batch_tokens, "max_tokens": a.train_max_tokens, "threads": a.threads}
    cmd = [sys.executable, str(HERE / "graph_bench_runs.py"), "--child", json.dumps(spec)]
    out["ours"] = runs.repeated("train_transcoder", cmd, runs.parse_json_stdout, a, 1)
    return out


def read_training_results() -> list[dict]:
    found = []
    for path in sorted((HERE / "results").glob("train_transcoder*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        figures = {}

        def walk(obj, prefix=""):
            if isinstance(obj, dict):
                for k, v in obj.items():
                    if "tokens_per_s" in k and isinstance(v, (int, float)):
                        figures[prefix + k] = v
                    walk(v, prefix + k + ".")
            elif isinstance(obj, list):
                for i, v in enumerate(obj):
                    walk(v, f"{prefix}{i}.")

        walk(data)
        found.append({"file": str(path.relative_to(HERE.parent)), "tokens_per_s": figures})
    notes = Path("/work/notes/readme_transcoders.md")
    if notes.exists():
        found.append({"file": str(notes), "tokens_per_s": {}, "note": "see that file for the training figures"})
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="16 tokens, tiny settings, no circuit-tracer, 1 repeat")
    p.add_argument("--sections", default="scale,batch,ct,train", help="comma-separated: scale, batch, ct, train")
    p.add_argument("--plt", default=None, help="PLT folder in circuit-tracer's layout (default: see above)")
    p.add_argument("--lengths", default="16,64,128")
    p.add_argument("--max-nodes", default="16=none,64=2000,128=4000", help="max_feature_nodes per prompt length")
    p.add_argument("--batch-size", type=int, default=None, help="ours in 'scale' (default: attribution.DEFAULT_BATCH)")
    p.add_argument("--batches", default="32,64,128,256")
    p.add_argument("--ct-lengths", default="16,64,128")
    p.add_argument("--ct-batch", type=int, default=None, help="circuit-tracer's batch size (default: swept)")
    p.add_argument("--ct-batches", default="128,256,512")
    p.add_argument("--budget-min", type=float, default=20.0, help="skip circuit-tracer at 128 tokens beyond this")
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--train-features", type=int, default=2304)
    p.add_argument("--train-batch-tokens", type=int, default=256)
    p.add_argument("--train-max-tokens", type=int, default=4096)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=None, help="fresh processes per run of ours (default 3; quick 1)")
    p.add_argument("--batch-repeats", type=int, default=1, help="fresh processes per batch-sweep run")
    p.add_argument("--ct-repeats", type=int, default=1)
    p.add_argument("--max-other", type=float, default=0.15, help="largest CPU share other processes may take")
    p.add_argument("--max-wait", type=float, default=None, help="seconds to wait for quiet (default 120; quick 0)")
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--no-lock", dest="lock", action="store_false", help="you already hold the heavy lock")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/bench_graph.json)")
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

    out_path = args.out or (None if args.quick else str(HERE / "results" / "bench_graph.json"))
    started = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="bench_graph_"))
    try:
        plt, plt_which = pick_plt(args, tmp)
        print(f"PLT: {plt_which}", flush=True)
        bench = Bench(args, tmp, plt)
        result: dict = {"settings": {
            "plt": plt, "plt_which": plt_which, "lengths": args.lengths, "max_feature_nodes": args.max_nodes,
            "max_logits": MAX_LOGITS, "logit_prob": LOGIT_PROB, "threads": args.threads, "repeats": args.repeats,
            "ct_repeats": args.ct_repeats, "default_batch": DEFAULT_BATCH, "quick": args.quick,
            "sections": sorted(sections), "max_other": args.max_other, "passage": PASSAGE,
            "prompt_ids": {n: prompt_ids(n) for n in sorted(set(args.lengths) | set(args.ct_lengths))},
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_at_start": os.getloadavg()}}}
        if "scale" in sections:
            result["scale"] = section_scale(bench, DEFAULT_BATCH)
        our_best = DEFAULT_BATCH
        if "batch" in sections:
            result["batch"] = section_batch(bench)
            our_best = result["batch"]["best"]
        if "ct" in sections:
            result["ct"] = section_ct(bench, our_best, started)
        if "train" in sections:
            result["train"] = section_train(bench)
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
            NOTES.write_text("# Graph benchmark (benchmarks/bench_graph.py)\n\n" + text)
        print(f"wrote {out_path} and {Path(out_path).with_suffix('.md')}" + ("" if args.out else f" and {NOTES}"))


if __name__ == "__main__":
    main()
