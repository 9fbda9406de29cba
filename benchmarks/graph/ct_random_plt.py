"""Write a RANDOM JumpReLU per-layer transcoder (PLT) in circuit-tracer's layout, to test the circuit-tracer
runner (benchmarks/external/ct_runner.py) and the agreement check before a trained transcoder exists.

    python benchmarks/graph/ct_random_plt.py --out /tmp/ct_random_plt [--features 512] [--l0 30] [--skip]

Layout written (docs/methods/graph.md, "Prompts and files"): config.yaml (model_kind: transcoder_set,
feature_input_hook: mlp.hook_in, feature_output_hook: mlp.hook_out, scan) and layer_{i}.safetensors with
W_enc [F, D], b_enc [F], W_dec [F, D], b_dec [D], activation_function.threshold [F] (and W_skip [D, D] with
--skip), float32.

Weights are random (seeded), but the thresholds are calibrated on the real model: each layer's MLP inputs
(the output of post_attention_layernorm: what the MLP reads) are collected on a few sentences, and each
feature's threshold is its own (1 - l0 / F) quantile of its pre-activation over those tokens (position 0
excluded, as circuit-tracer zeroes it), so about `l0` features fire per token at every layer. The decoder is
scaled so the transcoder output has roughly the size of the real MLP output (the error nodes carry the rest:
the graph is still exact, just not interpretable).

Runs in either environment (torch, safetensors and transformers; --model-dir must load with the local
transformers: the project's environment reads the converted SmolLM2 folder as it is).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

CALIBRATION_TEXTS = [
    "The capital of France is Paris, and the capital of Germany is Berlin.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "Once upon a time, a small robot wandered through the quiet forest looking for its friend.",
    "Water boils at 100 degrees Celsius at sea level; at higher altitudes it boils at lower temperatures.",
    "The quick brown fox jumps over the lazy dog. 1, 2, 3, 4, 5, 6, 7, 8, 9, 10.",
    "<|im_start|>user\nWhat is the largest planet in the solar system?<|im_end|>\n<|im_start|>assistant\n",
]


def default_model_dir() -> str:
    return str(Path.home() / ".cache" / "attrwidgets" / "smollm2-135m-instruct")


def collect_mlp_io(model_dir: str):
    """Per layer: the MLP inputs and outputs on the calibration texts, positions >= 1 only."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    layers = model.model.layers
    ins: list[list] = [[] for _ in layers]
    outs: list[list] = [[] for _ in layers]

    def hook(layer_idx):
        def fn(module, args, output):
            ins[layer_idx].append(args[0][0, 1:].detach())
            outs[layer_idx].append(output[0, 1:].detach())

        return fn

    handles = [layer.mlp.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    try:
        with torch.no_grad():
            for text in CALIBRATION_TEXTS:
                ids = tok(text, return_tensors="pt", add_special_tokens=False).input_ids
                ids = torch.cat([torch.tensor([[tok.bos_token_id]]), ids], dim=1)
                model(ids)
    finally:
        for h in handles:
            h.remove()
    return [torch.cat(x) for x in ins], [torch.cat(x) for x in outs]


def write_random_plt(out_dir: str, model_dir: str, n_features: int, l0: float, skip: bool, seed: int) -> dict:
    import torch
    from safetensors.torch import save_file

    if not 0 < l0 < n_features:
        sys.exit(f"--l0 must lie in (0, --features={n_features}), got {l0}")
    mlp_in, mlp_out = collect_mlp_io(model_dir)
    gen = torch.Generator().manual_seed(seed)
    n_layers, d_model = len(mlp_in), mlp_in[0].shape[-1]
    os.makedirs(out_dir, exist_ok=True)
    q = 1.0 - l0 / n_features
    stats = []
    for layer in range(n_layers):
        x, y = mlp_in[layer], mlp_out[layer]
        w_enc = torch.randn(n_features, d_model, generator=gen)
        w_enc /= w_enc.norm(dim=1, keepdim=True)
        pre = x @ w_enc.T
        threshold = torch.quantile(pre, q, dim=0).clamp(min=1e-3)
        acts = pre * (pre > threshold)
        w_dec = torch.randn(n_features, d_model, generator=gen) / d_model**0.5
        # Scale the decoder so the reconstruction's RMS matches the real MLP output's (a sane error size).
        recon_rms = (acts @ w_dec).pow(2).mean().sqrt().clamp(min=1e-12)
        w_dec *= y.pow(2).mean().sqrt() / recon_rms
        tensors = {
            "W_enc": w_enc.contiguous(),
            "b_enc": torch.zeros(n_features),
            "W_dec": w_dec.contiguous(),
            "b_dec": torch.zeros(d_model),
            "activation_function.threshold": threshold.contiguous(),
        }
        if skip:
            tensors["W_skip"] = (
                torch.randn(d_model, d_model, generator=gen) * (0.1 / d_model**0.5)
            ).contiguous()
        save_file(tensors, os.path.join(out_dir, f"layer_{layer}.safetensors"))
        stats.append(float((pre > threshold).sum(1).float().mean()))
    scan = f"attrwidgets/random-plt-{n_features}-l0{l0:g}-seed{seed}" + ("-skip" if skip else "")
    # Plain text instead of a YAML library: three keys, the format circuit-tracer's cache loader reads.
    with open(os.path.join(out_dir, "config.yaml"), "w", encoding="utf-8") as fh:
        fh.write("model_kind: transcoder_set\n")
        fh.write("feature_input_hook: mlp.hook_in\n")
        fh.write("feature_output_hook: mlp.hook_out\n")
        fh.write(f"scan: {scan}\n")
    return {
        "out": out_dir,
        "n_layers": n_layers,
        "d_model": d_model,
        "n_features": n_features,
        "calibration_tokens": int(mlp_in[0].shape[0]),
        "mean_l0_per_layer": stats,
        "scan": scan,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder to write (created)")
    ap.add_argument(
        "--model-dir", default=default_model_dir(), help="local HF folder (default: SmolLM2 cache)"
    )
    ap.add_argument("--features", type=int, default=512)
    ap.add_argument("--l0", type=float, default=30.0, help="features active per token, on average")
    ap.add_argument("--skip", action="store_true", help="add a random W_skip per layer")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    info = write_random_plt(args.out, args.model_dir, args.features, args.l0, args.skip, args.seed)
    l0s = info.pop("mean_l0_per_layer")
    info["mean_l0_calibration"] = sum(l0s) / len(l0s)
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
