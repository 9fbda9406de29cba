"""`attrwidgets attribute-dataset`: aw.attribute_dataset from the shell (cli.py dispatches here)."""

from __future__ import annotations

import json


def add_dataset_parser(sub) -> None:
    p = sub.add_parser("attribute-dataset", help="attribute every example of a JSONL/Parquet dataset into Parquet "
                                                  "shards (local or on Ray), resumable")
    p.add_argument("data", help="a .jsonl or .parquet file (a 'text' column, or see --text-column)")
    p.add_argument("--method", default="integrated_gradients", help="a token method, 'depass' or 'lig'")
    p.add_argument("-o", "--out", default="attributions/", help="the folder of shards and manifest")
    p.add_argument("--model", default=None, help="HF id or local folder (default: embedded SmolLM2)")
    p.add_argument("--engine", default="local", choices=("local", "ray"))
    p.add_argument("--workers", type=int, default=None, help="Ray actors (default: one per CPU, or per GPU)")
    p.add_argument("--gpus-per-worker", type=float, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="examples per shard")
    p.add_argument("--id-column", default="id")
    p.add_argument("--text-column", default="text")
    p.add_argument("--messages-column", default=None, help="a column of chat messages instead of text")
    p.add_argument("--target-column", default=None, help="a column of forced continuations")
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--no-resume", action="store_true", help="refuse a folder that already holds a run")
    p.add_argument("--options", default="{}", help='method options as JSON, e.g. \'{"n_steps": 16}\'')


def run_dataset(args) -> int:
    from attrwidgets.core.dataset.run import attribute_dataset
    from attrwidgets.errors import AttrWidgetsError

    try:
        options = json.loads(args.options)
    except ValueError as exc:
        raise AttrWidgetsError(f"--options is not JSON ({exc}).") from exc
    ds = attribute_dataset(args.data, model=args.model, method=args.method, out=args.out, engine=args.engine,
                           workers=args.workers, gpus_per_worker=args.gpus_per_worker, batch_size=args.batch_size,
                           id_column=args.id_column, text_column=args.text_column,
                           messages_column=args.messages_column, target_column=args.target_column,
                           max_new_tokens=args.max_new_tokens, resume=not args.no_resume, **options)
    print(ds)
    return 0
