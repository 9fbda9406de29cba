"""The measurements of benchmarks/graph/bench_graph.py (its docstring says what each section does): prompt ids, the
PLT choice, Bench (runs cached by their settings, so that one run serves several tables) and the sections.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.graph import graph_bench_runs as runs
from benchmarks.harness import BENCHMARKS, REPO, RESULTS

HERE = Path(__file__).resolve().parent

CT_PYTHON = os.environ.get("CT_VENV", "/work/venvs/ct") + "/bin/python"
TRAINED_PLT = Path.home() / ".cache" / "attrwidgets" / "transcoders" / "smollm2-plt-ct"
LEAD_RANDOM_PLT = Path("/tmp/ct_test/random_plt")
PASSAGE = (
    "The capital of France is Paris, and the capital of Germany is the city of Berlin. Both cities sit on rivers: "
    "the Seine runs through Paris and the Spree through Berlin. Every year millions of visitors walk along their "
    "banks, visit museums, and eat in small restaurants that serve food from every region of the country. In the "
    "spring the parks fill with families, students read on benches, and musicians play near the bridges until late "
    "in the evening. Trains connect the two capitals in about eight hours, so many travellers see both on one trip, "
    "and they often say that each city has its own rhythm. Paris feels older and grander; Berlin feels younger."
)
MAX_LOGITS, LOGIT_PROB = 10, 0.95


def prompt_ids(n: int) -> list[int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(
        str(Path.home() / ".cache" / "attrwidgets" / "smollm2-135m-instruct" / "tokenizer.json")
    )
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
        return str(LEAD_RANDOM_PLT), (
            "RANDOM PLT (512 features/layer, L0 ~30, benchmarks/graph/ct_random_plt.py seed 0; "
            "the trained one did not exist)"
        )
    out = tmp_root / "random_plt"
    subprocess.run([sys.executable, str(HERE / "ct_random_plt.py"), "--out", str(out)], check=True)
    return str(out), "RANDOM PLT (512 features/layer, L0 ~30, made now by benchmarks/graph/ct_random_plt.py seed 0)"


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
        spec = {
            "job": "graph",
            "ids": prompt_ids(n),
            "transcoder": self.plt if transcoder else None,
            "max_feature_nodes": max_nodes,
            "batch_size": batch,
            "max_logits": MAX_LOGITS,
            "logit_prob": LOGIT_PROB,
            "threads": self.args.threads,
            "npz": npz,
        }
        cmd = [sys.executable, str(HERE / "graph_bench_runs.py"), "--child", json.dumps(spec)]
        res = runs.repeated(key, cmd, runs.parse_json_stdout, self.args, repeats or self.args.repeats)
        res.update(
            side="attrwidgets",
            graph="transcoder" if transcoder else "components",
            max_feature_nodes=max_nodes,
            batch_size=batch,
            npz=npz,
        )
        self.cache[key] = res
        return res

    def ct(self, n: int, max_nodes, batch: int, keep_npz: bool) -> dict:
        key = f"ct_{n}tok_mfn{max_nodes}_b{batch}"
        if key in self.cache:
            return self.cache[key]
        out = self.tmp / f"{key}.npz"
        cmd = [
            CT_PYTHON,
            str(BENCHMARKS / "external" / "ct_runner.py"),
            "--transcoder-dir",
            self.plt,
            "--prompt-ids",
            ",".join(map(str, prompt_ids(n))),
            "--batch-size",
            str(batch),
            "--max-logits",
            str(MAX_LOGITS),
            "--logit-prob",
            str(LOGIT_PROB),
            "--threads",
            str(self.args.threads),
            "--no-scores",
            "--out",
            str(out),
        ]
        if max_nodes is not None:
            cmd += ["--max-feature-nodes", str(max_nodes)]

        def parse(_proc):
            meta = json.loads(out.with_suffix(".json").read_text())
            t = meta["timing"]
            return {
                "time_s": t["attribute_s"],
                "peak_rss_mb": t["peak_rss_mb"],
                "rss_after_load_mb": t["rss_after_load_mb"],
                "load_s": t["load_s"],
                "phases": t["phases"],
                "phase_calls": t["phase_calls"],
                "n_pos": meta["n_pos"],
                "n_nodes": meta["n_nodes"],
                "node_counts": meta["node_counts"],
                "active_candidates": meta["n_active_features"],
                "logits": meta["logits"],
                "input_ids": meta["prompt"]["input_ids"],
                "bos_prepended": meta["prompt"]["bos_prepended"],
                "versions": meta.get("versions"),
            }

        res = runs.repeated(key, cmd, parse, self.args, self.args.ct_repeats)
        res.update(
            side="circuit-tracer",
            graph="transcoder",
            max_feature_nodes=max_nodes,
            batch_size=batch,
            npz=str(out) if keep_npz else None,
        )
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
    table = [
        b.ours(n, True, b.args.max_nodes.get(n), batch, repeats=b.args.batch_repeats)
        for batch in b.args.batches
    ]
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
        out["missing"] = f"{CT_PYTHON} not found: build it with bash benchmarks/external/ct_env.sh"
        print("ct: " + out["missing"], flush=True)
        return out
    ct_batch = args.ct_batch
    if ct_batch is None:
        print(
            f"ct: circuit-tracer batch sweep (16 tokens, max_feature_nodes 1024, batches {args.ct_batches})",
            flush=True,
        )
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
                    f"{args.budget_min} min budget spent"
                )
                print(f"ct: skipping {n} tokens ({out['skipped'][-1]})", flush=True)
                continue
        batch = min(ct_batch, ct_batch_cap(n))
        print(f"ct: {n} tokens, max_feature_nodes {mfn}, circuit-tracer batch {batch}", flush=True)
        ct = b.ct(n, mfn, batch, keep_npz=True)
        ours = b.ours(n, True, mfn, our_batch)
        cmp_ = subprocess.run(
            [sys.executable, str(HERE / "graph_bench_compare.py"), ours["npz"], ct["npz"]],
            check=True,
            capture_output=True,
            text=True,
        )
        agreement = json.loads(cmp_.stdout.strip().splitlines()[-1])
        ids_equal = ct["input_ids"] == prompt_ids(n)
        print(
            f"    max |diff| {agreement['max_abs_diff']:.3g} (max |A| {agreement['max_abs_ct']:.3g}), "
            f"circuit-tracer / ours = {ct['time_s'] / ours['time_s']:.1f}x",
            flush=True,
        )
        out["pairs"].append(
            {
                "n_pos": n,
                "max_feature_nodes": mfn,
                "ours": ours,
                "ct": ct,
                "agreement": agreement,
                "same_input_ids": ids_equal,
                "time_ratio_ct_over_ours": ct["time_s"] / ours["time_s"],
                "peak_ratio_ct_over_ours": ct["peak_rss_mb"] / ours["peak_rss_mb"],
            }
        )
        for r in (ct, ours):
            if r.get("npz"):
                Path(r["npz"]).unlink(missing_ok=True)
    return out


def section_train(b: Bench) -> dict:
    out: dict = {"helper_results": read_training_results()}
    if not (REPO / "attrwidgets" / "core" / "graph" / "train.py").exists():
        out["missing"] = "attrwidgets/core/graph/train.py is missing: no training measurement"
        print("train: " + out["missing"], flush=True)
        return out
    a = b.args
    print(
        f"train: aw.train_transcoder, {a.train_steps} steps, {a.train_features} features, batch_tokens "
        f"{a.train_batch_tokens}",
        flush=True,
    )
    spec = {
        "job": "train",
        "texts": "pydoc topics",
        "steps": a.train_steps,
        "n_features": a.train_features,
        "batch_tokens": a.train_batch_tokens,
        "max_tokens": a.train_max_tokens,
        "threads": a.threads,
    }
    cmd = [sys.executable, str(HERE / "graph_bench_runs.py"), "--child", json.dumps(spec)]
    out["ours"] = runs.repeated("train_transcoder", cmd, runs.parse_json_stdout, a, 1)
    return out


def _collect_rates(obj, prefix: str, into: dict) -> None:
    """Every numeric `*tokens_per_s*` entry of a nested JSON value, keyed by its dotted path."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if "tokens_per_s" in k and isinstance(v, (int, float)):
                into[prefix + k] = v
            _collect_rates(v, prefix + k + ".", into)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _collect_rates(v, f"{prefix}{i}.", into)


def read_training_results() -> list[dict]:
    found = []
    for path in sorted(RESULTS.glob("train_transcoder*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        figures: dict = {}
        _collect_rates(data, "", figures)
        found.append({"file": str(path.relative_to(REPO)), "tokens_per_s": figures})
    notes = Path("/work/notes/readme_transcoders.md")
    if notes.exists():
        found.append(
            {"file": str(notes), "tokens_per_s": {}, "note": "see that file for the training figures"}
        )
    return found
