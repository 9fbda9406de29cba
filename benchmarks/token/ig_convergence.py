"""Completeness error of integrated gradients per evaluation budget, for every option, on the default model.

    python benchmarks/token/ig_convergence.py [--budgets 32 64 128] [--out benchmarks/results/ig_convergence.json]

Options compared: objective (log_prob, logit), baseline (pad, zero), quadrature (riemann_right, trapezoid,
gauss_legendre, adaptive). Budget = gradient evaluations per target (forward-only passes of the adaptive rule
are reported separately). Prints a markdown table: median and max relative completeness error over targets.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `benchmarks.*`
import attrwidgets as aw
from attrwidgets.core.quadrature import QUADRATURES
from benchmarks.harness import RESULTS

PROMPT = [{"role": "system", "content": "Answer briefly."},
          {"role": "user", "content": "What is the capital of France? Answer in one short sentence."}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budgets", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--rows", type=int, default=4, help="attribute the first ROWS generated tokens")
    parser.add_argument("--configs", nargs="+", default=None,
                        help="objective:baseline:quadrature triples to run (default: all combinations)")
    parser.add_argument("--out", default=str(RESULTS / "ig_convergence.json"))
    args = parser.parse_args()
    handle = aw.load_model()
    session = aw.AttributionSession(handle, PROMPT, max_new_tokens=args.max_new_tokens)
    print("generated:", repr("".join(t.clean for t in session.tokens[session.sequence.n_prompt:])), flush=True)
    configs = ([tuple(c.split(":")) for c in args.configs] if args.configs else
               list(itertools.product(("log_prob", "logit"), ("pad", "zero"), QUADRATURES[::-1])))
    rows = []
    for (objective, baseline, quadrature), budget in itertools.product(configs, args.budgets):
        start = time.perf_counter()
        try:
            r = session.compute("integrated_gradients", rows=range(args.rows), progress=False, n_steps=budget, baseline=baseline,
                                objective=objective, quadrature=quadrature, tol=0.0)
            err = r.completeness_error[: args.rows]
            row = {"objective": objective, "baseline": baseline, "quadrature": quadrature, "budget": budget,
                       "median": float(np.median(err)), "max": float(err.max()), "per_target": err.tolist(),
                       "forward_only": r.options.get("forward_only"), "seconds": time.perf_counter() - start}
        except aw.AttrWidgetsError as exc:  # e.g. NaN gradients at alpha=0 with the zero baseline
            row = {"objective": objective, "baseline": baseline, "quadrature": quadrature, "budget": budget,
                       "median": float("nan"), "max": float("nan"), "error": str(exc).split(".")[0],
                       "seconds": time.perf_counter() - start}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "per_target"}), flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"prompt": PROMPT, "torch_threads": torch.get_num_threads(), "rows": rows}, f, indent=1)
    print("\n| objective | baseline | quadrature | " + " | ".join(f"{b} evals (median / max)" for b in args.budgets) + " |")
    print("|---" * (3 + len(args.budgets)) + "|")
    for key, group in itertools.groupby(rows, key=lambda r: (r["objective"], r["baseline"], r["quadrature"])):
        cells = [f"{g['median']:.1%} / {g['max']:.1%}" if np.isfinite(g["median"]) else "NaN gradients"
                 for g in group]
        print(f"| {' | '.join(key)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
