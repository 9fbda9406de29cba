"""Every method family on every supported causal architecture at one size: is any of them slower per FLOP than
llama? (issue 18 §5).

    python benchmarks/architectures/bench_families.py [--repeats 3] [--archs llama,gemma2]

Models: random, 4 layers, width 256, 8 heads (4 key/value heads where the architecture has them), MLP 1024, the
offline tokenizer of attrwidgets.testing; a 24-token prompt. Per family, the median of --repeats runs in seconds,
and that time per non-embedding parameter relative to llama's (the parameter count stands in for FLOPs per token:
GPT-2's and GPT-NeoX's MLPs have two matrices where the gated ones have three; GPT-NeoX has no grouped-query
attention, so its key/value projections are twice as wide). Writes results/architecture_families.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `benchmarks.*`

from benchmarks.harness import RESULTS, write_json

ARCHS = ("llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "olmo2", "gpt_neox", "gpt2")
PROMPT = "The history of the city begins with a small fishing village on the river, and its harbour grew"
SIZE = {"hidden": 256, "intermediate": 1024, "layers": 4, "heads": 8, "kv_heads": 4}


def model(arch: str):
    """A 4-layer, width-256 random model of `arch` with attrwidgets.testing's tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    from attrwidgets.core.adapters import adapter_for
    from attrwidgets.models import ModelHandle
    from attrwidgets.testing import tiny_config, tiny_tokenizer

    tokenizer = tiny_tokenizer("metaspace" if arch in ("llama", "mistral") else "byte")
    config = tiny_config(arch, len(tokenizer), **SIZE)
    config.pad_token_id, config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32).eval()
    return ModelHandle(model=m, tokenizer=tokenizer, adapter=adapter_for(m), model_id=f"bench-{arch}")


def families(handle) -> dict:
    import attrwidgets as aw

    return {
        "integrated_gradients (64 steps, 4 rows)": lambda: aw.attribute(
            handle, PROMPT, method="integrated_gradients", max_new_tokens=4, n_steps=64, quadrature="gauss_legendre",
            progress=False),
        "depass token": lambda: aw.depass(handle, PROMPT, progress=False),
        "head contributions": lambda: aw.head_contributions(handle, PROMPT, progress=False),
        "component graph": lambda: aw.attribution_graph(handle, PROMPT, progress=False),
        "lig (every layer, 16 steps)": lambda: aw.lig(handle, PROMPT, n_steps=16),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--archs", default=",".join(ARCHS), help="comma-separated; llama is always measured")
    args = parser.parse_args()
    archs = ["llama"] + [a for a in args.archs.split(",") if a and a != "llama"]
    rows, per_param = {}, {}
    for arch in archs:
        handle = model(arch)
        embed = handle.adapter.embedding(handle.model).weight.numel()
        params = sum(p.numel() for p in handle.model.parameters()) - embed
        head = handle.adapter.lm_head(handle.model)
        if head is not None and head.weight.data_ptr() != handle.adapter.embedding(handle.model).weight.data_ptr():
            params -= head.weight.numel()
        rows[arch] = {"params": params}
        for name, run in families(handle).items():
            run()  # warm-up: first-call costs (kernels, caches) are not the family's
            rows[arch][name] = statistics.median(_timed(run) for _ in range(args.repeats))
        per_param[arch] = params
        print(arch, rows[arch], flush=True)
    names = list(families(model("llama")))
    lines = ["| family | " + " | ".join(archs) + " |", "|---|" + "---|" * len(archs)]
    for name in names:
        base = rows["llama"][name] / per_param["llama"]
        cells = [f"{rows[a][name]:.3f} s ({rows[a][name] / per_param[a] / base:.2f}x)" for a in archs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\nseconds (median), and time per non-embedding parameter relative to llama's:\n")
    print("\n".join(lines))
    write_json(RESULTS / "architecture_families.json", {"rows": rows, "table": lines})


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
