"""Which training settings reach the SmolLM2 goal? Train on a few layers of one cached harvest, many settings.

    flock /tmp/attrwidgets-heavy.lock python benchmarks/transcoder_sweep.py --tokens 60000 \
        --layers 3,4,5,25 --runs "steps=400,tokens=24000" "steps=1200,tokens=60000"

A per-layer transcoder's layers train independently (each reads and writes its own MLP), so a few layers
answer for those layers at a tenth of a full run's cost. The harvest (self-sampled text, exactly what
aw.train_transcoder harvests by default, held-out sequences recorded by the fp32 model) is computed once and
cached in /tmp; each run trains on the first `tokens` training tokens of it and is measured on the same
held-out tokens with train.evaluate. Prints one line per run and layer; writes
benchmarks/results/transcoder_sweep.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "transcoder_sweep.json"
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


def train_subset(data, layers: list[int], run: dict, amp: bool) -> dict:
    from attrwidgets.core.graph import train as tr
    from attrwidgets.core.graph.train_model import TrainableTranscoder

    d_model = data["train_x"].shape[-1]
    settings = tr._settings("plt", "jumprelu", run.get("n_features", tr.DEFAULT_FEATURES_PER_DIM * d_model),
                            run.get("steps", tr.DEFAULT_STEPS), run.get("batch_tokens", tr.DEFAULT_BATCH_TOKENS),
                            run.get("sparsity", tr.DEFAULT_SPARSITY), 10.0, run.get("lr", tr.DEFAULT_LR), None,
                            True, 0, 0.1, run.get("target_l0", tr.DEFAULT_TARGET_L0),
                            run.get("threshold_phase", tr.DEFAULT_THRESHOLD_PHASE))
    tokens = run.get("tokens", tr.DEFAULT_MAX_TOKENS)
    train_x = data["train_x"][:tokens, layers].contiguous()
    train_y = data["train_y"][:tokens, layers].contiguous()
    module = TrainableTranscoder("plt", "jumprelu", len(layers), d_model, settings.n_features, skip=True,
                                 bandwidth=0.1)
    generator = torch.Generator().manual_seed(0)
    sample = torch.randperm(train_x.shape[0], generator=generator)[:4096]
    module.initialise(train_x[sample], train_y[sample], start_l0=settings.target_l0, generator=generator)
    optimizer = tr.adam(module.parameters(), settings.lr)
    started = time.perf_counter()
    tr._fit(module, optimizer, settings, train_x, train_y, 0, None, None, {}, False, None, amp)
    train_s = time.perf_counter() - started
    figures = tr.evaluate(module.export(), data["eval_x"][:, layers], data["eval_y"][:, layers])
    return {"run": run, "tokens": int(train_x.shape[0]), "train_s": round(train_s, 1),
            "train_s_all_layers": round(train_s * 30 / len(layers), 1), "layers": layers,
            "fve": figures["fve"], "l0": figures["l0"], "eval_tokens": figures["eval_tokens"]}


def main() -> None:
    import attrwidgets as aw
    from attrwidgets.core.graph.train import bf16_matmuls

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=60_000, help="tokens to harvest (and cache) once")
    parser.add_argument("--layers", default="3,4,5,25")
    parser.add_argument("--runs", nargs="+", default=["steps=400,tokens=24000"])
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(2)
    handle = aw.load_model()
    data = cached_harvest(handle, args.tokens, seed=0)
    layers = [int(v) for v in args.layers.split(",")]
    amp = bf16_matmuls(torch.device("cpu"))
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else []
    for text in args.runs:
        result = train_subset(data, layers, parse_run(text), amp)
        results.append(result)
        cells = "  ".join(f"L{layer}: {f:.3f} @ {l0:.0f}" for layer, f, l0 in
                          zip(layers, result["fve"], result["l0"]))
        print(f"{text:<50} {cells}   ({result['train_s']:.0f} s, ~{result['train_s_all_layers']:.0f} s for 30 "
              f"layers)", flush=True)
        out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
