"""attrwidgets explain "prompt" --method integrated_gradients --max-new-tokens 8 -o out.json|out.csv|out.html
attrwidgets lig "The cat sat on the mat." --model DIR --n-steps 32 --granularity all --layers 0,5 -o out.json
attrwidgets dlig "prompt" --model DIR --layer "block 10" --denoising-steps 16 -o out.csv|out.json|out.html
attrwidgets graph "prompt" [--transcoder DIR] -o graph.json|graph.html
attrwidgets train-transcoder [--kind plt|clt] -o DIR"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from attrwidgets.errors import AttrWidgetsError

_WRITERS = {".json": "save", ".csv": "to_csv"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attrwidgets", description="Attribution for language models.")
    sub = parser.add_subparsers(dest="command", required=True)
    explain = sub.add_parser("explain", help="attribute each generated token to the earlier tokens")
    explain.add_argument("prompt", help="the prompt text (with --chat: the user message)")
    explain.add_argument("--method", default="integrated_gradients", help="see `attrwidgets methods`")
    explain.add_argument("--max-new-tokens", type=int, default=8)
    explain.add_argument("--target", help="force this continuation instead of generating")
    explain.add_argument("--contrast", help="explain logit(token) - logit(contrast)")
    explain.add_argument("--chat", action="store_true", help="wrap the prompt as a user message (chat template)")
    explain.add_argument("--system", help="with --chat: a system message")
    explain.add_argument("--model", default=None, help="HF id or local folder (default: embedded SmolLM2)")
    explain.add_argument("--device", default="auto")
    explain.add_argument("--n-steps", type=int, help="integrated gradients: path evaluations per target")
    explain.add_argument("--baseline", help="integrated gradients: zero or pad")
    explain.add_argument("--quadrature", help="riemann_right, trapezoid, gauss_legendre or adaptive")
    explain.add_argument("--layer", help="layer_integrated_gradients: 'block 10', 'block 10 attn', 'embeddings' "
                         "or a module path")
    explain.add_argument("--tokenlens", action="store_true", help="write .json in the TokenLens format")
    explain.add_argument("-o", "--output", help="out.json, out.csv or out.html; none: print a summary")
    sub.add_parser("methods", help="list the attribution methods")
    _lig_parser(sub)
    _dlig_parser(sub)
    from attrwidgets.cli_dataset import add_dataset_parser
    from attrwidgets.cli_graph import add_graph_parser
    from attrwidgets.cli_transcoder import add_train_parser

    add_graph_parser(sub)
    add_train_parser(sub)
    add_dataset_parser(sub)
    return parser


def _dlig_parser(sub) -> None:
    d = sub.add_parser("dlig", help="sample from a masked-diffusion LM with layer IG at every denoising step")
    d.add_argument("prompt", help="the prompt text")
    d.add_argument("--model", required=True, help="HF id or local folder of a masked-diffusion (or masked) LM")
    d.add_argument("--layer", default=None, help="'block 10', 'block 10 attn', 'embeddings' or a module path "
                   "(default: the middle block)")
    d.add_argument("--gen-length", type=int, default=32)
    d.add_argument("--denoising-steps", "--steps", dest="denoising_steps", type=int, default=16,
                   help="denoising steps (--steps: the old name)")
    d.add_argument("--block-length", type=int, default=None)
    d.add_argument("--remasking", default="low_confidence", choices=("low_confidence", "random"))
    d.add_argument("--temperature", type=float, default=0.0)
    d.add_argument("--n-steps", type=int, default=32, help="IG path evaluations per denoising step")
    d.add_argument("--baseline", default="mask_prompt", choices=("mask_prompt", "mask", "zero"))
    d.add_argument("--quadrature", default="gauss_legendre")
    d.add_argument("--mask-token-id", type=int, default=None)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default="auto")
    d.add_argument("--trust-remote-code", action="store_true", help="for checkpoints with their own code (Dream, LLaDA)")
    d.add_argument("-o", "--output", default=None, help="out.csv, out.json or out.html; none: print a summary")


def _is_encoder(model: str) -> bool:
    """A BERT-family folder loads with its masked-LM head for the sampler (its logits at every position), and so
    does a folder in the Dream or LLaDA layout (core/diffusion_layouts.py: never through its remote code)."""
    from transformers import AutoConfig

    from attrwidgets.core.adapters import ENCODERS
    from attrwidgets.core.diffusion_layouts import layout_of, read_config

    if layout_of(read_config(model) or {}) is not None:
        return True
    try:
        return getattr(AutoConfig.from_pretrained(model, trust_remote_code=False), "model_type", None) in ENCODERS
    except (OSError, ValueError):
        return False  # load_model reports what is wrong with the path


def _dlig(args) -> int:
    import attrwidgets as aw

    suffix = Path(args.output).suffix.lower() if args.output else None
    if suffix not in (None, ".json", ".csv", ".html"):
        raise AttrWidgetsError(f"Cannot write {args.output!r}: the output must end in .csv, .json or .html.")
    handle = aw.load_model(args.model, device=args.device, masked_lm=_is_encoder(args.model),
                           trust_remote_code=args.trust_remote_code)
    result = aw.dlig(handle, args.prompt, layer=args.layer, gen_length=args.gen_length, denoising_steps=args.denoising_steps,
                     block_length=args.block_length, remasking=args.remasking, temperature=args.temperature,
                     n_steps=args.n_steps, baseline=args.baseline, quadrature=args.quadrature,
                     mask_token_id=args.mask_token_id, seed=args.seed)
    print(result)
    if suffix is None:
        for r in range(len(result.row_step)):
            p = int(result.row_position[r])
            top = result.scores[r].argsort()[::-1][:3]
            sources = ", ".join(f"{int(q)}:{result.tokens[int(q)].clean!r} {result.scores[r, q]:.3f}" for q in top)
            print(f"  step {int(result.row_step[r])} pos {p} {result.tokens[p].clean!r:>10} <- {sources}")
        return 0
    if suffix == ".html":
        from attrwidgets.export_html import to_html

        to_html(result, args.output)
    elif suffix == ".csv":
        result.to_csv(args.output)
    else:
        result.save(args.output)
    print(f"wrote {args.output}")
    return 0


def _int_list(text: str | None) -> list[int] | None:
    if text is None or not text.strip():
        return None
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise AttrWidgetsError(f"Expected comma-separated integers (e.g. 0,5); got {text!r}.") from None


def _lig_parser(sub) -> None:
    """The upstream `lig explain` flags, so its users can switch; plus --quadrature."""
    from attrwidgets.core.lig.baselines import BASELINES

    lig = sub.add_parser("lig", help="layer-wise integrated gradients (z->z, z->u per head, u->z) of one text")
    lig.add_argument("text", help="the input text")
    lig.add_argument("--model", default=None, help="HF id or local folder (default: embedded SmolLM2)")
    lig.add_argument("--n-steps", "--steps", dest="n_steps", type=int, default=32,
                     help="IG integration steps (--steps: the old name)")
    lig.add_argument("--granularity", default="all", help="att, mlp, layer, or all (comma-separated for several)")
    lig.add_argument("--baseline-att", default="self_input_token", choices=BASELINES["att"])
    lig.add_argument("--baseline-mlp", default="zero", choices=BASELINES["mlp"])
    lig.add_argument("--baseline-layer", default="self_input_token", choices=BASELINES["layer"])
    lig.add_argument("--layers", default=None, help="comma-separated layer indices (default: all)")
    lig.add_argument("--target-tokens", default=None, help="comma-separated token indices (default: all)")
    lig.add_argument("--target-head", type=int, default=None, help="one attention head (default: all heads)")
    lig.add_argument("--quadrature", default=None, help="gauss_legendre (default), trapezoid, riemann_right, "
                     "riemann_trapezoid (upstream's)")
    lig.add_argument("--device", default="auto")
    lig.add_argument("--no-residual", action="store_true", help="drop the MLP residual in the u->z route")
    lig.add_argument("-o", "--output", default=None, help="out.json (upstream layout) or out.html; none: stdout")


def _lig(args) -> int:
    import json

    import attrwidgets as aw

    suffix = Path(args.output).suffix.lower() if args.output else None
    if suffix not in (None, ".json", ".html"):
        raise AttrWidgetsError(f"Cannot write {args.output!r}: the output must end in .json or .html.")
    granularity = args.granularity.split(",") if "," in args.granularity else args.granularity
    options = {"quadrature": args.quadrature} if args.quadrature else {}
    handle = aw.load_model(args.model, device=args.device)
    result = aw.lig(handle, args.text, n_steps=args.n_steps, granularity=granularity, layers=_int_list(args.layers),
                    target_tokens=_int_list(args.target_tokens), target_head=args.target_head,
                    baseline_att=args.baseline_att, baseline_mlp=args.baseline_mlp,
                    baseline_layer=args.baseline_layer, include_residual_connection=not args.no_residual, **options)
    if suffix is None:
        print(json.dumps(result.to_lig_json(), indent=1, ensure_ascii=False))
        return 0
    if suffix == ".html":
        from attrwidgets.export_html import to_html

        to_html(result, args.output)
    else:
        result.to_lig_json(args.output)
    print(f"{result!r}\nwrote {args.output}")
    return 0


def _explain(args) -> int:
    import attrwidgets as aw

    options = {k: v for k, v in (("n_steps", args.n_steps), ("baseline", args.baseline),
                                 ("quadrature", args.quadrature), ("layer", args.layer)) if v is not None}
    prompt = args.prompt
    if args.chat:
        prompt = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": args.prompt}]
    if args.output and Path(args.output).suffix.lower() not in (".json", ".csv", ".html"):
        raise AttrWidgetsError(f"Cannot write {args.output!r}: the output must end in .json, .csv or .html.")
    handle = aw.load_model(args.model, device=args.device)
    result = aw.attribute(handle, prompt, method=args.method, max_new_tokens=args.max_new_tokens,
                          target=args.target, contrast=args.contrast, **options)
    print(result)
    if not args.output:
        for row, target in enumerate(result.targets):
            top = result.scores[row].argsort()[::-1][:3]
            sources = ", ".join(f"{result.tokens[p].clean!r} {result.scores[row, p]:+.3f}" for p in top)
            print(f"  {target.clean!r:>14} <- {sources}")
        return 0
    path, suffix = Path(args.output), Path(args.output).suffix.lower()
    if suffix == ".html":
        from attrwidgets.export_html import to_html

        to_html(result, path)
    elif suffix == ".json" and args.tokenlens:
        from attrwidgets.core.token.result_io import save_tokenlens

        save_tokenlens(result, path)
    else:
        getattr(result, _WRITERS[suffix])(path)
    print(f"wrote {path}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "methods":
            from attrwidgets.core.token.catalog import get_method, list_methods

            for name in list_methods():
                print(f"{name:22} {get_method(name).summary}")
            return 0
        if args.command == "graph":
            from attrwidgets.cli_graph import run_graph

            return run_graph(args)
        if args.command == "attribute-dataset":
            from attrwidgets.cli_dataset import run_dataset

            return run_dataset(args)
        if args.command == "train-transcoder":
            from attrwidgets.cli_transcoder import run_train

            return run_train(args)
        return {"lig": _lig, "dlig": _dlig}.get(args.command, _explain)(args)
    except AttrWidgetsError as exc:
        print(f"attrwidgets: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
