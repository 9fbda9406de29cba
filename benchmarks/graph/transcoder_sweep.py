"""Which training settings reach the SmolLM2 goal? Train on a few layers of one cached harvest, many settings.

    flock /tmp/attrwidgets-heavy.lock python benchmarks/graph/transcoder_sweep.py --tokens 60000 \
        --layers 3,4,5,25 --runs "steps=400,tokens=24000" "steps=1200,tokens=60000"
    ... --seeds 0,1 --runs "steps=2400,tokens=120000"     # two harvests' training tokens, seed 0's held-out

A per-layer transcoder's layers train independently (each reads and writes its own MLP), so a few layers
answer for those layers at a tenth of a full run's cost. The harvest (self-sampled text, exactly what
aw.train_transcoder harvests by default, held-out sequences recorded by the fp32 model) is computed once and
cached in /tmp (one file per --tokens and seed: several seeds pool their training tokens, the first seed's
held-out tokens measure); each run trains on the first `tokens` training tokens and is measured on the
same held-out tokens with train.evaluate. Prints one line per run and layer; writes
benchmarks/results/transcoder_sweep.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `benchmarks.*`
from benchmarks.harness import RESULTS as RESULTS_DIR

RESULTS = RESULTS_DIR / "transcoder_sweep.json"
NUMBERS = {"steps", "tokens", "n_features", "batch_tokens", "target_l0"}


def cached_harvest(handle, n_tokens: int, seed: int):
    from attrwidgets.core.graph.harvest import harvest_sampled

    path = Path(f"/tmp/attrwidgets_harvest_smollm2_{n_tokens}_{seed}.pt")
    if path.exists():
        return torch.load(path)
    started = time.perf_counter()
    data = harvest_sampled(handle, n_tokens, seed=seed)
    print(f"harvested {data.inputs.shape[0]} tokens in {time.perf_counter() - started:.0f} s", flush=True)
    (train_x, train_y), (eval_x, eval_y) = data.split()
    saved = {"train_x": train_x, "train_y": train_y, "eval_x": eval_x, "eval_y": eval_y}
    torch.save(saved, path)
    return saved


def parse_run(text: str) -> dict:
    run = {}
    for part in filter(None, text.split(",")):
        key, value = part.split("=")
        run[key] = int(value) if key in NUMBERS else float(value)
    return run


def pooled_layers(handle, n_tokens: int, seeds: list[int], layers: list[int]) -> dict:
    """The chosen layers of each seed's harvest: training tokens pooled in seed order, held-out from the first."""
    parts = []
    for seed in seeds:
        full = cached_harvest(handle, n_tokens, seed)
        parts.append({key: value[:, layers].contiguous() for key, value in full.items()})
        del full
    return {"train_x": torch.cat([p["train_x"] for p in parts]), "train_y": torch.cat([p["train_y"] for p in parts]),
            "eval_x": parts[0]["eval_x"], "eval_y": parts[0]["eval_y"]}


def train_subset(data, layers: list[int], run: dict, amp: bool) -> dict:
    """data: the chosen layers only (pooled_layers)."""
    from attrwidgets.core.graph import train as tr
    from attrwidgets.core.graph.train_model import TrainableTranscoder

    d_model = data["train_x"].shape[-1]
    settings = tr._settings("plt", "jumprelu", run.get("n_features", tr.DEFAULT_FEATURES_PER_DIM * d_model),
                            run.get("steps", tr.DEFAULT_STEPS), run.get("batch_tokens", tr.DEFAULT_BATCH_TOKENS),
                            run.get("sparsity", tr.DEFAULT_SPARSITY), 10.0, run.get("lr", tr.DEFAULT_LR), None,
                            True, 0, 0.1, run.get("target_l0", tr.DEFAULT_TARGET_L0),
                            run.get("threshold_phase", tr.DEFAULT_THRESHOLD_PHASE))
    tokens = run.get("tokens", tr.DEFAULT_MAX_TOKENS)
    train_x, train_y = data["train_x"][:tokens], data["train_y"][:tokens]
    module = TrainableTranscoder("plt", "jumprelu", len(layers), d_model, settings.n_features, skip=True,
                                 bandwidth=0.1)
    generator = torch.Generator().manual_seed(0)
    sample = torch.randperm(train_x.shape[0], generator=generator)[:4096]
    module.initialise(train_x[sample], train_y[sample], start_l0=settings.target_l0, generator=generator)
    optimizer = tr.adam(module.parameters(), settings.lr)
    started = time.perf_counter()
    tr._fit(module, optimizer, settings, train_x, train_y, 0, None, None, {}, False, None, amp)
    train_s = time.perf_counter() - started
    figures = tr.evaluate(module.export(), data["eval_x"], data["eval_y"])
    return {"run": run, "tokens": int(train_x.shape[0]), "train_s": round(train_s, 1),
            "layers": layers,
            "fve": figures["fve"], "l0": figures["l0"], "eval_tokens": figures["eval_tokens"]}


def main() -> None:
    import attrwidgets as aw
    from attrwidgets.core.graph.train import bf16_matmuls

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=60_000, help="tokens to harvest (and cache) once")
    parser.add_argument("--seeds", default="0", help="harvests to pool, e.g. 0,1 (each --tokens long)")
    parser.add_argument("--layers", default="3,4,5,25")
    parser.add_argument("--runs", nargs="+", default=["steps=400,tokens=24000"])
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(2)
    handle = aw.load_model()
    layers = [int(v) for v in args.layers.split(",")]
    data = pooled_layers(handle, args.tokens, [int(v) for v in args.seeds.split(",")], layers)
    amp = bf16_matmuls(torch.device("cpu"))
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else []
    for text in args.runs:
        result = train_subset(data, layers, parse_run(text), amp)
        results.append(result)
        cells = "  ".join(f"L{layer}: {f:.3f} @ {l0:.0f}" for layer, f, l0 in
                          zip(layers, result["fve"], result["l0"]))
        # no time for all 30 layers from this: a full step costs ~1.2x more per layer than a 4-layer one
        print(f"{text:<50} {cells}   ({result['train_s']:.0f} s)", flush=True)
        out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
