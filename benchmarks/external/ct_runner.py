"""Build one attribution graph with circuit-tracer 0.5.0 (nnsight backend), timed, and write it to disk.

Run by the separate venv's python (bash benchmarks/external/ct_env.sh builds /work/venvs/ct), never by the project's:

    /work/venvs/ct/bin/python benchmarks/external/ct_runner.py \
        --transcoder-dir ~/.cache/attrwidgets/transcoders/smollm2-plt-ct \
        --prompt-ids 1,504,3458,282,4649,314 --batch-size 256 --out /tmp/ct_graph.npz

Writes OUT (.npz: arrays, no pickle) and OUT with .json (metadata, timings, peak RSS); the full contract is in
/work/notes/ct_notes.md ("Runner CLI and output"). Nothing touches the hub: HF_HUB_OFFLINE=1 and
TRANSFORMERS_OFFLINE=1 are set before any import, the model is a local folder and the transcoder is served
to circuit-tracer through its own cache mechanism (CIRCUIT_TRACER_CACHE_DIR/<ref>/config.yaml, read by
circuit_tracer.utils.caching before any download is tried).

Model folder: a folder written by transformers 5 (ours, ~/.cache/attrwidgets/smollm2-135m-instruct) says
`rope_parameters` and `tokenizer_class: TokenizersBackend`, which transformers 4.57 (pinned by this venv)
silently misreads (rope_theta falls back to 10000 instead of 100000) or refuses. The runner then serves a
shim folder (symlinks to the weights and tokenizer.json, a rewritten config.json / tokenizer_config.json);
logits_last in the output lets the caller check that the model computes what the project's model computes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `benchmarks.*`
from benchmarks.harness import peak_rss_mb

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TRANSCODER_REF = "attrwidgets-transcoder"  # name of the symlink in the private circuit-tracer cache folder
TOKEN_LAYER = -1  # node_layer of token nodes; logit nodes get n_layers


def default_model_dir() -> str:
    return str(Path.home() / ".cache" / "attrwidgets" / "smollm2-135m-instruct")


# ------------------------------------------------------------------------------------------ model folder
def compat_model_dir(model_dir: Path, work: Path) -> tuple[Path, list[str]]:
    """The folder to hand transformers 4.57: model_dir itself, or a shim with rewritten configs."""
    config = json.loads((model_dir / "config.json").read_text())
    changes: list[str] = []
    rope = config.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" not in config:
        config["rope_theta"] = rope["rope_theta"]
        extra = {k: v for k, v in rope.items() if k != "rope_theta"}
        config["rope_scaling"] = None if extra.get("rope_type", "default") == "default" else extra
        del config["rope_parameters"]
        changes.append(
            f"config.json: rope_parameters -> rope_theta={config['rope_theta']}, "
            f"rope_scaling={config['rope_scaling']}"
        )
    tok_cfg_path = model_dir / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text()) if tok_cfg_path.exists() else None
    if tok_cfg is not None and tok_cfg.get("tokenizer_class") == "TokenizersBackend":
        tok_cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
        for key in ("backend", "is_local", "local_files_only"):
            tok_cfg.pop(key, None)
        changes.append("tokenizer_config.json: TokenizersBackend -> PreTrainedTokenizerFast")
    if not changes:
        return model_dir, changes
    shim = work / "model"
    shim.mkdir()
    for entry in model_dir.iterdir():
        if entry.name not in ("config.json", "tokenizer_config.json"):
            (shim / entry.name).symlink_to(entry.resolve())
    (shim / "config.json").write_text(json.dumps(config, indent=1))
    if tok_cfg is not None:
        (shim / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=1))
    return shim, changes


def read_transcoder_config(tc_dir: Path) -> dict:
    """The few keys of config.yaml circuit-tracer needs, checked here so a bad folder fails with a reason."""
    import yaml

    path = tc_dir / "config.yaml"
    if not path.is_file():
        sys.exit(
            f"--transcoder-dir {tc_dir} has no config.yaml (circuit-tracer layout: config.yaml + "
            "layer_{i}.safetensors; see docs/methods/graph.md, 'Prompts and files')"
        )
    cfg = yaml.safe_load(path.read_text())
    missing = [k for k in ("model_kind", "feature_input_hook", "feature_output_hook") if k not in cfg]
    if missing:
        sys.exit(f"{path} lacks {', '.join(missing)}")
    if cfg["model_kind"] == "transcoder_set" and not list(tc_dir.glob("layer_*.safetensors")):
        sys.exit(f"{tc_dir}: model_kind transcoder_set but no layer_*.safetensors")
    if "transcoders" in cfg:
        sys.exit(
            f"{path} lists `transcoders:` (hub files): convert it to the layer_{{i}}.safetensors layout first"
        )
    return cfg


# ------------------------------------------------------------------------------------------------ timing
class PhaseTimer:
    """Wraps circuit-tracer's phase entry points (class attributes) with perf_counter accumulators.

    attribute() runs: setup_attribution (phase 0: MLP in/out, transcoder encode, error vectors),
    run_forward_pass (phase 1: batch_size copies of the prompt, the frozen forward with grads),
    compute_batch on logit rows (phase 3) and on feature rows (phase 4), compute_partial_influences (the
    influence ranking of phase 4, only when max_feature_nodes < active features).
    """

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._saved: list = []
        self.logits_last = None  # the logits circuit-tracer's own forward gave at the last position

    def add(self, name: str, dt: float):
        self.seconds[name] = self.seconds.get(name, 0.0) + dt
        self.calls[name] = self.calls.get(name, 0) + 1

    def wrap(self, owner, attr: str, name_of, on_result=None):
        original = getattr(owner, attr)
        self._saved.append((owner, attr, original))
        timer = self

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                result = original(*args, **kwargs)
            finally:
                timer.add(name_of(args, kwargs), time.perf_counter() - t0)
            if on_result is not None:
                on_result(result)
            return result

        setattr(owner, attr, timed)

    def restore(self):
        for owner, attr, original in reversed(self._saved):
            setattr(owner, attr, original)
        self._saved.clear()


def install_timers(timer: PhaseTimer):
    import circuit_tracer.attribution.attribute as attribute_mod
    from circuit_tracer.attribution.context_nnsight import AttributionContext
    from circuit_tracer.replacement_model.replacement_model_nnsight import NNSightReplacementModel

    def keep_logits(ctx):
        timer.logits_last = ctx.logits[0, -1].detach().float().cpu().numpy()

    timer.wrap(NNSightReplacementModel, "setup_attribution", lambda a, k: "precompute_s", keep_logits)
    timer.wrap(NNSightReplacementModel, "run_forward_pass", lambda a, k: "forward_s")

    def batch_kind(args, kwargs):
        ctx, layers = args[0], kwargs.get("layers", args[1] if len(args) > 1 else None)
        return "logit_rows_s" if bool((layers == ctx.n_layers).all()) else "feature_rows_s"

    timer.wrap(AttributionContext, "compute_batch", batch_kind)
    timer.wrap(attribute_mod, "compute_partial_influences", lambda a, k: "influence_ranking_s")


# ------------------------------------------------------------------------------------------------ output
def graph_arrays(graph, n_layers: int) -> dict:
    """Node table in the adjacency's order: selected features, errors, tokens, logits."""
    import numpy as np

    active = graph.active_features.cpu().numpy().astype(np.int64)  # (n_active, 3): layer, pos, feature
    values = graph.activation_values.detach().float().cpu().numpy()
    selected = graph.selected_features.cpu().numpy().astype(np.int64)
    tokens = graph.input_tokens.cpu().numpy().astype(np.int64)
    n_pos = len(tokens)
    logit_ids = np.array([t.vocab_idx for t in graph.logit_targets], dtype=np.int64)
    n_feat, n_err, n_tok, n_logit = len(selected), n_layers * n_pos, n_pos, len(logit_ids)

    kind = np.array(["feature"] * n_feat + ["error"] * n_err + ["token"] * n_tok + ["logit"] * n_logit)
    err_layer, err_pos = np.divmod(np.arange(n_err), n_pos)
    layer = np.concatenate(
        [active[selected, 0], err_layer, np.full(n_tok, TOKEN_LAYER), np.full(n_logit, n_layers)]
    ).astype(np.int32)
    position = np.concatenate(
        [active[selected, 1], err_pos, np.arange(n_tok), np.full(n_logit, n_pos - 1)]
    ).astype(np.int32)
    feature = np.concatenate([active[selected, 2], np.full(n_err, -1), tokens, logit_ids]).astype(np.int64)
    activation = np.concatenate([values[selected], np.full(n_err + n_tok + n_logit, np.nan)]).astype(
        np.float32
    )
    adjacency = graph.adjacency_matrix.detach().cpu().numpy()
    assert adjacency.shape == (len(kind), len(kind)), (adjacency.shape, len(kind))
    return {
        "adjacency": adjacency.astype(np.float32, copy=False),
        "node_kind": kind,
        "node_layer": layer,
        "node_position": position,
        "node_feature": feature,
        "node_activation": activation,
        "input_ids": tokens,
        "logit_ids": logit_ids,
        "logit_probs": graph.logit_probabilities.detach().float().cpu().numpy(),
        "active_features": active,
        "activation_values": values.astype(np.float32),
        "selected_features": selected,
    }


def write_outputs(out: Path, arrays: dict, meta: dict):
    import numpy as np

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fh:
        np.savez(fh, **arrays)
    with open(out.with_suffix(".json"), "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1, ensure_ascii=False)
        fh.write("\n")


# -------------------------------------------------------------------------------------------------- main
def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model-dir", default=default_model_dir(), help="local HF folder (default: SmolLM2 cache)"
    )
    ap.add_argument(
        "--transcoder-dir", required=True, help="circuit-tracer layout: config.yaml + layer_{i}.safetensors"
    )
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt-ids", help="comma-separated token ids, passed to circuit-tracer as a list")
    src.add_argument("--prompt", help="text, tokenized by circuit-tracer (add_special_tokens=False)")
    ap.add_argument("--max-feature-nodes", type=int, default=None, help="default: every active feature")
    ap.add_argument("--batch-size", type=int, default=512, help="attribute()'s default 512 (its CLI: 256)")
    ap.add_argument("--max-logits", type=int, default=10)
    ap.add_argument("--logit-prob", type=float, default=0.95)
    ap.add_argument("--update-interval", type=int, default=4, help="batches between influence re-rankings")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--warmup", action="store_true", help="run attribute() once untimed first")
    ap.add_argument("--no-scores", action="store_true", help="skip replacement/completeness scores")
    ap.add_argument("--out", required=True, help="output .npz (metadata goes to the same stem .json)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    model_dir = Path(args.model_dir).expanduser().resolve()
    tc_dir = Path(args.transcoder_dir).expanduser().resolve()
    if not (model_dir / "config.json").is_file():
        sys.exit(f"--model-dir must be a local HF folder with config.json (no hub access here): {model_dir}")
    tc_cfg = read_transcoder_config(tc_dir)
    out = Path(args.out).expanduser().resolve()
    if out.suffix != ".npz":
        sys.exit(f"--out must end in .npz, got {out}")
    prompt: str | list[int]
    if args.prompt_ids is not None:
        try:
            prompt = [int(t) for t in args.prompt_ids.replace(" ", "").split(",") if t]
        except ValueError:
            sys.exit(f"--prompt-ids: expected comma-separated integers, got {args.prompt_ids!r}")
        if not prompt:
            sys.exit("--prompt-ids is empty")
    else:
        prompt = args.prompt
        if not prompt:
            sys.exit("--prompt is empty")

    work = Path(tempfile.mkdtemp(prefix="ct_runner_"))
    try:
        return run_in(work, args, prompt, model_dir, tc_dir, tc_cfg, out, t_start, argv)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # symlinks only: never follows them into the real folders


def run_in(
    work: Path, args, prompt, model_dir: Path, tc_dir: Path, tc_cfg: dict, out: Path, t_start: float, argv
) -> int:
    # circuit-tracer resolves a transcoder ref through its cache first: <cache>/<ref>/config.yaml. A symlink
    # with a fixed name avoids its hub-name aliases ("gemma", "llama") and any '@' or 'hf://' parsing.
    cache = work / "ct_cache"
    cache.mkdir()
    (cache / TRANSCODER_REF).symlink_to(tc_dir)
    os.environ["CIRCUIT_TRACER_CACHE_DIR"] = str(cache)
    ct_model_dir, shim_changes = compat_model_dir(model_dir, work)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    dtype = getattr(torch, args.dtype)

    import circuit_tracer
    import nnsight
    import transformers
    from circuit_tracer import ReplacementModel, attribute
    from circuit_tracer.graph import compute_graph_scores
    from circuit_tracer.utils.caching import is_cached

    if not is_cached(TRANSCODER_REF):
        sys.exit(f"circuit-tracer does not see {cache / TRANSCODER_REF / 'config.yaml'} as cached")
    import_s = time.perf_counter() - t_start

    t0 = time.perf_counter()
    model = ReplacementModel.from_pretrained(
        str(ct_model_dir), TRANSCODER_REF, backend="nnsight", device=device, dtype=dtype
    )
    load_s = time.perf_counter() - t0
    rss_after_load = peak_rss_mb()
    n_layers = model.cfg.n_layers
    tokenizer = model.tokenizer

    def run():
        return attribute(
            prompt,
            model,
            max_n_logits=args.max_logits,
            desired_logit_prob=args.logit_prob,
            batch_size=args.batch_size,
            max_feature_nodes=args.max_feature_nodes,
            update_interval=args.update_interval,
            verbose=False,
        )

    warmup_s = None
    if args.warmup:
        t0 = time.perf_counter()
        run()
        warmup_s = time.perf_counter() - t0

    timer = PhaseTimer()
    install_timers(timer)
    try:
        t0 = time.perf_counter()
        graph = run()
        attribute_s = time.perf_counter() - t0
    finally:
        timer.restore()
    peak_after_attribute = peak_rss_mb()

    scores = None
    scores_s = None
    if not args.no_scores:
        t0 = time.perf_counter()
        replacement, completeness = compute_graph_scores(graph)
        scores_s = time.perf_counter() - t0
        scores = {"replacement": replacement, "completeness": completeness}

    arrays = graph_arrays(graph, n_layers)
    # The real model's logits at the last position (circuit-tracer's own forward), to check that this venv's
    # transformers computes what the project's model does.
    arrays["logits_last"] = timer.logits_last
    n_pos = len(arrays["input_ids"])
    counts = {k: int((arrays["node_kind"] == k).sum()) for k in ("feature", "error", "token", "logit")}
    given = list(prompt) if isinstance(prompt, list) else None
    # What the prompt is without circuit-tracer's BOS rule (text: tokenized as it does, without special tokens).
    plain_ids = given if given is not None else tokenizer(prompt, add_special_tokens=False).input_ids
    phases = {k: round(v, 6) for k, v in timer.seconds.items()}
    meta = {
        "runner": "benchmarks/external/ct_runner.py",
        "argv": sys.argv[1:] if argv is None else list(argv),
        "model_dir": str(model_dir),
        "model_dir_used": str(ct_model_dir),
        "model_shim": shim_changes,
        "transcoder_dir": str(tc_dir),
        "transcoder_config": tc_cfg,
        "scan": model.scan,
        "settings": {
            "max_feature_nodes": args.max_feature_nodes,
            "batch_size": args.batch_size,
            "max_logits": args.max_logits,
            "logit_prob": args.logit_prob,
            "update_interval": args.update_interval,
            "device": str(device),
            "dtype": args.dtype,
            "threads": torch.get_num_threads(),
            "warmup": args.warmup,
        },
        "prompt": {
            "given_ids": given,
            "given_text": None if given is not None else prompt,
            "input_ids": arrays["input_ids"].tolist(),
            "bos_prepended": arrays["input_ids"].tolist() != plain_ids,
            "tokens": [tokenizer.decode([t]) for t in arrays["input_ids"].tolist()],
            "special_ids": sorted(int(i) for i in tokenizer.all_special_ids),
            "bos_token_id": tokenizer.bos_token_id,
        },
        "n_layers": n_layers,
        "n_pos": n_pos,
        "n_active_features": len(arrays["active_features"]),
        "node_counts": counts,
        "n_nodes": len(arrays["node_kind"]),
        "logits": [
            {"id": int(i), "token": tokenizer.decode([int(i)]), "prob": float(p)}
            for i, p in zip(arrays["logit_ids"], arrays["logit_probs"])
        ],
        "scores": scores,
        "timing": {
            "attribute_s": attribute_s,
            "phases": phases,
            "phase_calls": timer.calls,
            "other_s": attribute_s - sum(timer.seconds.values()),
            "load_s": load_s,
            "import_s": import_s,
            "warmup_s": warmup_s,
            "scores_s": scores_s,
            "peak_rss_mb": peak_after_attribute,
            "rss_after_load_mb": rss_after_load,
        },
        "versions": {
            "circuit_tracer": circuit_tracer.__version__,
            "nnsight": nnsight.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "arrays": {k: [str(v.dtype), list(v.shape)] for k, v in arrays.items()},
    }
    t0 = time.perf_counter()
    write_outputs(out, arrays, meta)
    write_s = time.perf_counter() - t0
    wall = time.perf_counter() - t_start
    meta["timing"].update({"write_s": write_s, "wall_s": wall, "peak_rss_final_mb": peak_rss_mb()})
    with open(out.with_suffix(".json"), "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    print(
        f"attribute {attribute_s:.2f}s ({counts['feature']} features, {n_pos} positions, "
        f"{counts['logit']} logits)  load {load_s:.2f}s  peak RSS {peak_after_attribute:.0f} MB  "
        f"wall {wall:.2f}s -> {out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
