"""Layer IG (DLIG) cost against depth on SmolLM2, and DLIG per denoising step on a tiny masked LM.

    python benchmarks/dlig/bench_dlig.py           # full run (waits for a quiet machine before every timing)
    python benchmarks/dlig/bench_dlig.py --quick   # smoke test: 8 steps, 3 layers, 1 repeat, no waiting, no JSON

Part 1, the default model (aw.load_model(): SmolLM2-135M, 30 blocks, fp32 on the CPU), one process,
torch.set_num_threads(2). One prompt; its greedy continuation (8 tokens) is generated once and then forced
with target= in every run, so every run explains the same 8 tokens (the script checks the ids). Settings
equal everywhere: quadrature gauss_legendre, n_steps 32, objective log_prob (the default of both methods).
  * aw.layer_ig at layer = embeddings, block 0, 7, 15, 22, 29, block 15 attn, block 15 mlp, with the
    baseline "pad" (every position's state on the pad-token sequence: at the embeddings this is token IG's
    baseline, so that row must equal token IG) and with "prompt_pad" (DLIG's default: prompt positions
    replaced, generated ones kept);
  * token IG: aw.attribute(method="integrated_gradients", baseline="pad") at the embeddings, the unit.
Layer IG resumes the forward after the layer (core/boundaries.py), so a path point costs a forward and
backward through the blocks after it only: later layers must be cheaper, and the ratio column shows it.
Each run: one warm-up, then the median of 3 (min-max), time.perf_counter around the call only.
Completeness error: the relative |sum IG - (F(h) - F(h'))| / |F(h) - F(h')| per generated token (row),
median and max over the 8 rows; on SmolLM2 32 steps are far from complete (docs/methods/dlig.md): reported,
not hidden.

Part 2, aw.dlig (masked-diffusion sampler with layer IG at every denoising step) on
attrwidgets.testing.tiny_masked_lm(): a TINY random 2-layer BERT masked LM (byte tokenizer), the only
masked-diffusion-capable model offline, so absolute times say little about Dream/LLaDA; the per-step
structure does. gen_length 16, steps 4 / 8 / 16 (4 / 2 / 1 tokens unmasked = rows per step), layer
"block 1" (the last block) and "embeddings", n_steps 32 gauss_legendre, objective logit (dlig's default),
baseline mask_prompt. Same timing rule, except that a call lasts milliseconds: each timing is the mean of
back-to-back calls lasting at least --min-time s (default 1). Time per step = total / denoising steps; each
step is one prediction forward of the whole sequence plus layer IG of the tokens it unmasks.

Contention: before each timed configuration the script waits (up to --max-wait s) until other processes use
at most --max-other of the machine's CPU (harness.wait_for_quiet, /proc/stat); during each timed call it
measures the CPU other processes took (machine busy time minus this process's), and a disturbed call is
repeated (up to --retries times). Results: markdown tables on stdout, JSON in
benchmarks/results/bench_dlig.json.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `benchmarks.*`
from benchmarks.harness import RESULTS, machine_busy_seconds, wait_for_quiet, write_json

PROMPT = "The quick brown fox jumps over the lazy dog."
TINY_PROMPT = "The cat sat on the mat."
LAYERS = ("embeddings", "block 0", "block 7", "block 15", "block 22", "block 29", "block 15 attn", "block 15 mlp")
QUICK_LAYERS = ("embeddings", "block 15", "block 29")
BASELINES = ("pad", "prompt_pad")
DLIG_STEPS = (4, 8, 16)
DLIG_LAYERS = ("block 1", "embeddings")


def own_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed_call(fn, args) -> tuple[float, float | None, object]:
    """One call, repeated while other processes took more than args.max_other of the CPU during it."""
    for attempt in range(args.retries + 1):
        m0, c0, t0 = machine_busy_seconds(), own_cpu_seconds(), time.perf_counter()
        out = fn()
        wall = time.perf_counter() - t0
        m1, c1 = machine_busy_seconds(), own_cpu_seconds()
        share = None
        if m0 is not None and m1 is not None:
            share = max(0.0, (m1 - m0) - (c1 - c0)) / (wall * (os.cpu_count() or 1))
        if share is None or share <= args.max_other or attempt == args.retries:
            return wall, share, out
        print(f"    disturbed (others took {share:.0%} of the CPU): again", flush=True)
    raise AssertionError("unreachable")


def measure(name: str, fn, args, min_time: float = 0.0) -> dict:
    """Wait for quiet, one warm-up, then args.repeats timings: median, range, the last result.

    A timing is one call, or for calls shorter than min_time s the mean over enough back-to-back calls to
    last min_time (the CPU-share check reads clock ticks of 10 ms: it needs a timing of some length)."""
    quiet = wait_for_quiet(args.max_other, args.max_wait) if args.max_wait > 0 else {}
    t0 = time.perf_counter()
    fn()  # warm-up
    number = max(1, math.ceil(min_time / max(time.perf_counter() - t0, 1e-6))) if min_time > 0 else 1

    def many():
        for _ in range(number):
            out = fn()
        return out

    times, shares, out = [], [], None
    for _ in range(args.repeats):
        t, share, out = timed_call(many, args)
        times.append(t / number)
        shares.append(share)
    med = float(np.median(times))
    worst = max((s for s in shares if s is not None), default=None)
    print(f"  {name}: {med:.3g} s (min {min(times):.3g}, max {max(times):.3g}; {number} call(s) per timing; others "
          f"took at most {worst if worst is not None else float('nan'):.1%} of the CPU)", flush=True)
    return {"time_s": med, "times_s": times, "calls_per_timing": number, "others_share": shares, "quiet": quiet}, out


def errors(values) -> dict:
    e = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(e)), "max": float(np.max(e)), "all": e.tolist()}


# ---------------------------------------------------------------------------------------------- part 1
def forced_continuation(model, n_new: int) -> tuple[str, list[int]]:
    """The greedy continuation of PROMPT, as a string that tokenizes back to the same ids."""
    from attrwidgets.core.sequence import prepare_sequence

    seq = prepare_sequence(model, PROMPT, max_new_tokens=n_new)
    ids = seq.input_ids.tolist()[seq.n_prompt:]
    text = model.tokenizer.decode(ids)
    again = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    if again != ids:
        sys.exit(f"the greedy continuation {text!r} does not tokenize back to its ids ({ids} vs {again}): "
                 "pick another prompt")
    return text, ids


def part1(args) -> dict:
    import torch

    import attrwidgets as aw

    model = aw.load_model()
    n_blocks = model.adapter.n_layers(model.model)
    target, target_ids = forced_continuation(model, args.new_tokens)
    common = {"target": target, "n_steps": args.steps, "quadrature": "gauss_legendre", "progress": False}
    print(f"SmolLM2 ({model.model_id}, {n_blocks} blocks): prompt {PROMPT!r}, forced continuation {target!r} "
          f"({len(target_ids)} tokens), n_steps {args.steps} gauss_legendre, {torch.get_num_threads()} threads",
          flush=True)

    def check(result, name):
        got = [result.tokens[p].id for p in result.target_positions]
        if got != target_ids:
            sys.exit(f"{name} explained {got}, not the forced continuation {target_ids}")

    runs = {}
    timing, ig = measure("token IG (integrated_gradients, pad)",
                         lambda: aw.attribute(model, PROMPT, method="integrated_gradients", baseline="pad", **common),
                         args)
    check(ig, "token IG")
    runs["token_ig"] = {**timing, "completeness_error": errors(ig.completeness_error),
                        "evaluations": ig.options.get("evaluations"), "batch_size": ig.options.get("batch_size"),
                        "n_prompt": len(ig.tokens) - len(ig.target_positions), "n_positions": len(ig.tokens)}
    for layer in args.layers:
        for baseline in args.baselines:
            name = f"{layer} | {baseline}"
            timing, res = measure(f"layer IG {name}", lambda layer=layer, baseline=baseline: aw.layer_ig(
                model, PROMPT, layer=layer, baseline=baseline, **common), args)
            check(res, name)
            run = {**timing, "layer": layer, "baseline": baseline, "completeness_error": errors(res.completeness_error),
                   "evaluations": res.options.get("evaluations"), "batch_size": res.options.get("batch_size"),
                   "ratio_to_token_ig": timing["time_s"] / runs["token_ig"]["time_s"]}
            if layer == "embeddings" and baseline == "pad":  # must be token IG on inputs_embeds
                a, b = np.asarray(res.signed_scores), np.asarray(ig.scores)  # token IG's aggregate is the sum
                run["vs_token_ig"] = {"max_abs_diff_signed": float(np.nanmax(np.abs(a - b))),
                                      "max_abs_signed": float(np.nanmax(np.abs(b))),
                                      "max_abs_diff_error": float(np.max(np.abs(res.completeness_error
                                                                                - ig.completeness_error)))}
            runs[name] = run
    return {"model_id": model.model_id, "n_blocks": n_blocks, "prompt": PROMPT, "target": target,
            "target_ids": target_ids, "runs": runs}


# ---------------------------------------------------------------------------------------------- part 2
def part2(args) -> dict:
    import attrwidgets as aw
    from attrwidgets.testing import tiny_masked_lm

    model = tiny_masked_lm()
    cfg = model.model.config
    n_params = sum(p.numel() for p in model.model.parameters())
    print(f"\nDLIG on {model.model_id} (tiny: {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, "
          f"{n_params:,} parameters): prompt {TINY_PROMPT!r}, gen_length {args.gen_length}, n_steps {args.steps}",
          flush=True)
    runs = {}
    for layer in DLIG_LAYERS:
        for steps in args.dlig_steps:
            name = f"{layer} | {steps} steps"
            timing, res = measure(f"dlig {name}", lambda layer=layer, steps=steps: aw.dlig(
                model, TINY_PROMPT, layer=layer, gen_length=args.gen_length, denoising_steps=steps, n_steps=args.steps,
                quadrature="gauss_legendre", progress=False), args, min_time=args.min_time)
            rows_per_step = np.bincount(res.row_step, minlength=res.n_denoising_steps)
            runs[name] = {**timing, "layer": layer, "steps": steps, "n_rows": len(res.row_step),
                          "rows_per_step": rows_per_step.tolist(), "time_per_step_s": timing["time_s"] / res.n_denoising_steps,
                          "time_per_row_s": timing["time_s"] / len(res.row_step),
                          "completeness_error": errors(res.completeness_error), "n_positions": res.length}
    return {"model_id": model.model_id, "n_layers": cfg.num_hidden_layers, "hidden_size": cfg.hidden_size,
            "n_parameters": n_params, "prompt": TINY_PROMPT, "gen_length": args.gen_length, "runs": runs}


# ---------------------------------------------------------------------------------------------- report
def fmt_range(r: dict, ms: bool = False) -> str:
    t, k, u = r["times_s"], (1e3 if ms else 1.0), ("ms" if ms else "s")
    return f"{r['time_s'] * k:.{0 if ms else 2}f} {u} ({min(t) * k:.{0 if ms else 2}f}-{max(t) * k:.{0 if ms else 2}f})"


def blocks_after(layer: str, n: int) -> str:
    """What one path point runs forward and backward (before the final norm and the head at the targets)."""
    if layer == "embeddings":
        return f"{n} blocks"
    parts = layer.split()
    rest = n - 1 - int(parts[1])
    if len(parts) == 3 and parts[2] == "attn":
        return f"MLP half of block {parts[1]} + {rest} blocks"
    return f"{rest} blocks"


def print_report(report: dict) -> None:
    s, p1, p2 = report["settings"], report["part1"], report["part2"]
    tig = p1["runs"]["token_ig"]
    n_rows = len(p1["target_ids"])
    print(f"\n### Layer IG cost against depth: {p1['model_id']} ({p1['n_blocks']} blocks), {s['threads']} threads\n")
    print(f"Prompt {p1['prompt']!r} ({tig['n_prompt']} tokens), forced continuation {p1['target']!r} "
          f"({n_rows} rows), n_steps {s['steps']} gauss_legendre, objective log_prob; time = median of "
          f"{s['repeats']} after one warm-up (min-max); error = relative completeness error over the {n_rows} rows.\n")
    bl = s["baselines"]
    head = " | ".join(f"time, {b} | x token IG | error median / max, {b}" for b in bl)
    print(f"| layer | resumed per path point | {head} | path points |")
    print("|---|---|" + "---|---|---|" * len(bl) + "---|")
    e = tig["completeness_error"]
    cells = " | ".join([f"{fmt_range(tig)} | 1.00x | {e['median']:.1%} / {e['max']:.1%}"]
                       + ["n/a | n/a | n/a"] * (len(bl) - 1))  # token IG has no prompt_pad baseline
    print(f"| token IG (integrated_gradients, pad) | {p1['n_blocks']} blocks | {cells} | {tig['evaluations']} |")
    for layer in s["layers"]:
        row = []
        for b in bl:
            r = p1["runs"][f"{layer} | {b}"]
            e = r["completeness_error"]
            row.append(f"{fmt_range(r)} | {r['ratio_to_token_ig']:.2f}x | {e['median']:.1%} / {e['max']:.1%}")
        points = p1["runs"][f"{layer} | {bl[0]}"]["evaluations"]
        print(f"| layer IG {layer} | {blocks_after(layer, p1['n_blocks'])} | {' | '.join(row)} | {points} |")
    emb = p1["runs"].get("embeddings | pad", {}).get("vs_token_ig")
    if emb:
        print(f"\nLayer IG at the embeddings with the pad baseline against token IG (same function): max |signed "
              f"score difference| {emb['max_abs_diff_signed']:.2e} (largest |score| {emb['max_abs_signed']:.3g}), "
              f"max completeness-error difference {emb['max_abs_diff_error']:.2e}.")
    print(f"\n### DLIG per denoising step: {p2['model_id']}, a TINY random {p2['n_layers']}-layer BERT masked LM "
          f"(hidden {p2['hidden_size']}, {p2['n_parameters']:,} parameters)\n")
    print(f"Prompt {p2['prompt']!r}, gen_length {p2['gen_length']}, n_steps {s['steps']} gauss_legendre, "
          f"objective logit, baseline mask_prompt; {s['threads']} threads; time = median of {s['repeats']} after one "
          "warm-up (min-max; each timing the mean of back-to-back calls lasting >= "
          f"{s['min_time']:g} s). Each step: one prediction forward, then layer IG of the tokens it unmasks.\n")
    print("| layer | denoising steps | rows per step | total time | time per step | time per row | "
          "error median / max |")
    print("|---|---|---|---|---|---|---|")
    for r in p2["runs"].values():
        rps = sorted(set(r["rows_per_step"]))
        e = r["completeness_error"]
        print(f"| {r['layer']} | {r['steps']} | {'/'.join(map(str, rps))} | {fmt_range(r, ms=True)} | "
              f"{r['time_per_step_s'] * 1e3:.1f} ms | {r['time_per_row_s'] * 1e3:.1f} ms | "
              f"{e['median']:.1%} / {e['max']:.1%} |")
    shares = [x for part in (p1, p2) for r in part["runs"].values() for x in r["others_share"] if x is not None]
    if shares:
        print(f"\nOther processes took at most {max(shares):.1%} of the CPU during any timed call.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 steps, 3 layers, pad only, 4 denoising steps, "
                                                              "1 repeat, no waiting")
    parser.add_argument("--steps", type=int, default=None, help="IG path points (default 32, 8 with --quick)")
    parser.add_argument("--new-tokens", type=int, default=8, help="length of the forced continuation")
    parser.add_argument("--gen-length", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None, help="timed calls after the warm-up (default 3, 1 quick)")
    parser.add_argument("--max-other", type=float, default=0.10, help="largest CPU share other processes may take")
    parser.add_argument("--max-wait", type=float, default=None, help="seconds to wait for quiet (0: never wait)")
    parser.add_argument("--min-time", type=float, default=1.0,
                        help="tiny-model timings: back-to-back calls until a timing lasts this long (s)")
    parser.add_argument("--retries", type=int, default=2, help="repeats of a disturbed timed call")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/bench_dlig.json; "
                                                    "--quick writes none unless given)")
    args = parser.parse_args()
    args.steps = args.steps or (8 if args.quick else 32)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.max_wait is None:
        args.max_wait = 0 if args.quick else 900
    args.layers = QUICK_LAYERS if args.quick else LAYERS
    args.baselines = ("pad",) if args.quick else BASELINES
    args.dlig_steps = (4,) if args.quick else DLIG_STEPS
    out = args.out or (None if args.quick else str(RESULTS / "bench_dlig.json"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    import attrwidgets as aw

    torch.set_num_threads(args.threads)
    report = {
        "settings": {"steps": args.steps, "quadrature": "gauss_legendre", "new_tokens": args.new_tokens,
                     "layers": list(args.layers), "baselines": list(args.baselines),
                     "dlig_steps": list(args.dlig_steps),
                     "gen_length": args.gen_length, "min_time": args.min_time,
                     "threads": torch.get_num_threads(), "repeats": args.repeats,
                     "quick": args.quick, "max_other": args.max_other,
                     "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                     "versions": {"attrwidgets": aw.__version__, "torch": torch.__version__,
                                  "python": platform.python_version()}},
        "part1": part1(args),
        "part2": part2(args),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    print_report(report)
    write_json(out, report)


if __name__ == "__main__":
    main()
