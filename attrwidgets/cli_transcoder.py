"""attrwidgets train-transcoder -o DIR [--texts FILE ...] [--kind plt|clt] [--features N] [--training-steps N] ...

Trains with aw.train_transcoder's defaults unless told otherwise, checkpoints into DIR (an interrupted run
continues where it stopped when run again, unless --no-resume), and writes the transcoder there in our
layout; --format circuit-tracer (or both) also writes circuit-tracer's layout (into DIR-ct for both).
--texts: .jsonl files (a "text" field per line) or plain text files (blank-line separated passages); none:
the model samples its own text.
"""

from __future__ import annotations

import json
from pathlib import Path

from attrwidgets.errors import AttrWidgetsError


def add_train_parser(sub) -> None:
    from attrwidgets.core.graph import train

    t = sub.add_parser("train-transcoder", help="train a per-layer or cross-layer transcoder for a model's MLPs")
    t.add_argument("-o", "--output", required=True, help="folder for the transcoder (and its checkpoints)")
    t.add_argument("--model", default=None, help="HF id or local folder (default: embedded SmolLM2)")
    t.add_argument("--texts", nargs="+", default=None,
                   help=".jsonl ({'text': ...} per line) or text files (blank-line separated passages); "
                        "default: text the model samples itself")
    t.add_argument("--kind", choices=("plt", "clt"), default="plt")
    t.add_argument("--activation", choices=("jumprelu", "relu", "topk"), default="jumprelu")
    t.add_argument("--features", type=int, default=None, help="features per layer (default: 4 x d_model)")
    t.add_argument("--top-k", type=int, default=None, help="k for --activation topk (default: --target-l0)")
    t.add_argument("--skip", action=argparse_bool(), default=train.DEFAULT_SKIP,
                   help=f"a linear skip connection per layer (PLT only; default {train.DEFAULT_SKIP})")
    t.add_argument("--training-steps", "--steps", dest="training_steps", type=int, default=train.DEFAULT_STEPS,
                   help="optimizer steps (--steps: the old name)")
    t.add_argument("--batch-tokens", type=int, default=train.DEFAULT_BATCH_TOKENS)
    t.add_argument("--lr", type=float, default=train.DEFAULT_LR)
    t.add_argument("--sparsity", type=float, default=train.DEFAULT_SPARSITY)
    t.add_argument("--sparsity-c", type=float, default=10.0)
    t.add_argument("--target-l0", type=int, default=train.DEFAULT_TARGET_L0)
    t.add_argument("--max-tokens", type=int, default=train.DEFAULT_MAX_TOKENS)
    t.add_argument("--memory-budget", default=train.DEFAULT_MEMORY_BUDGET, help="e.g. 4GiB")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto")
    t.add_argument("--no-resume", action="store_true", help="start over even if DIR holds a checkpoint")
    t.add_argument("--format", choices=("attrwidgets", "circuit-tracer", "both"), default="attrwidgets")


def argparse_bool():
    import argparse

    return argparse.BooleanOptionalAction


def read_texts(paths):
    """Lazily yield the passages of the given files."""
    for name in paths:
        path = Path(name).expanduser()
        if not path.is_file():
            raise AttrWidgetsError(f"--texts {name!r} is not a file.")
        if path.suffix == ".jsonl":
            with path.open(encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            yield str(json.loads(line)["text"])
                        except (ValueError, KeyError, TypeError) as exc:
                            raise AttrWidgetsError(f"{path}:{number} is not a JSON object with a 'text' field.") from exc
        else:
            passage = []
            with path.open(encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.strip():
                        passage.append(line)
                    elif passage:
                        yield "".join(passage)
                        passage = []
            if passage:
                yield "".join(passage)


def run_train(args) -> int:
    import attrwidgets as aw

    output = Path(args.output).expanduser()
    handle = aw.load_model(args.model, device=args.device)
    transcoder = aw.train_transcoder(
        handle, read_texts(args.texts) if args.texts else None, kind=args.kind, n_features=args.features,
        activation=args.activation, training_steps=args.training_steps, batch_tokens=args.batch_tokens, sparsity=args.sparsity,
        sparsity_c=args.sparsity_c, lr=args.lr, device=args.device, save=output, max_tokens=args.max_tokens,
        memory_budget=args.memory_budget, resume=not args.no_resume, seed=args.seed, top_k=args.top_k,
        skip=args.skip and args.kind == "plt", target_l0=args.target_l0)
    figures = transcoder.config.get("figures", {})
    print(f"trained a {transcoder.kind.upper()} ({transcoder.n_layers} layers x {transcoder.n_features} features): "
          f"held-out variance explained {figures.get('fve_mean', float('nan')):.3f} (min "
          f"{figures.get('fve_min', float('nan')):.3f}), mean L0 {figures.get('l0_mean', float('nan')):.1f}")
    if args.format == "attrwidgets":
        print(f"wrote {output}")
    elif args.format == "circuit-tracer":
        transcoder.save(output, format="circuit-tracer")
        print(f"wrote {output} (attrwidgets and circuit-tracer layouts)")
    else:
        ct = output.with_name(output.name + "-ct")
        transcoder.save(ct, format="circuit-tracer")
        print(f"wrote {output} (attrwidgets) and {ct} (circuit-tracer)")
    return 0
