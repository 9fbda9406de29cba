"""The two engines of aw.attribute_dataset. Both write each batch's rows as one shard from THIS process as soon as
it is computed (core/dataset/shards.py): on two CPUs, two Ray actors take every CPU, and a Ray write stage beside
them could wait forever; writing from the driver also makes an interrupted run resumable at batch granularity.

local: one process, the batches in order. ray: Ray Data `map_batches` over an actor pool (the model loaded once
per actor, `num_gpus` per actor), on the Ray the user started (`ray.init(address=...)` for a cluster) or a local
one started here with the machine's CPUs.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from attrwidgets.core.dataset.examples import ExampleAttributor
from attrwidgets.core.dataset.shards import write_shard
from attrwidgets.errors import AttrWidgetsError

ENGINES = ("local", "ray")


class Progress:
    """A tqdm bar in examples, with tokens/s beside its rate and ETA."""

    def __init__(self, total: int, enabled: bool, desc: str):
        self.bar, self.tokens, self.start = None, 0, time.perf_counter()
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="example")

    def update(self, rows: list[dict]) -> None:
        self.tokens += sum(r["n_tokens"] for r in rows)
        if self.bar is not None:
            self.bar.update(len(rows))
            self.bar.set_postfix(tokens_s=f"{self.tokens / max(time.perf_counter() - self.start, 1e-9):.0f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_local(model, method, options, max_new_tokens, records, out, batch_size, progress) -> None:
    attributor = ExampleAttributor(model, method, options, max_new_tokens)
    bar = Progress(len(records), progress, f"attribute_dataset ({method}, local)")
    try:
        for start in range(0, len(records), batch_size):
            rows = attributor(records[start:start + batch_size])
            write_shard(out, rows)
            bar.update(rows)
    finally:
        bar.close()


class RayAttributor:
    """Ray Data's actor: records arrive as JSON strings, rows leave as JSON strings (nested, ragged lists
    survive Ray's block format untouched); the driver parses and writes them."""

    def __init__(self, model, method, options, max_new_tokens, threads):
        self.attributor = ExampleAttributor(model, method, options, max_new_tokens, threads=threads)

    def __call__(self, batch: dict) -> dict:
        rows = self.attributor([json.loads(r) for r in batch["record"]])
        return {"row": np.array([json.dumps(r) for r in rows], dtype=object)}


def run_ray(model, method, options, max_new_tokens, records, out, batch_size, progress, *, workers,
            gpus_per_worker) -> None:
    ray = import_ray()
    if not ray.is_initialized():  # left running afterwards: the next call skips Ray's start
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network but the package registries
        ray.init(include_dashboard=False, log_to_driver=False)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    size = workers or (max(1, int(ray.cluster_resources().get("GPU", 0) // gpus_per_worker)) if gpus_per_worker
                       else cpus)
    threads = max(1, cpus // size) if not gpus_per_worker else None
    # More actors than CPUs would leave some unscheduled (a pool waiting forever): they share the CPUs instead.
    cpus_per_actor = cpus / size if size > cpus else (threads or 1)
    ray.data.DataContext.get_current().enable_progress_bars = progress  # ours counts examples; Ray's, blocks
    items = ray.data.from_items([{"record": json.dumps(r)} for r in records])
    mapped = items.map_batches(
        RayAttributor, fn_constructor_kwargs={"model": model, "method": method, "options": options,
                                              "max_new_tokens": max_new_tokens, "threads": threads},
        compute=ray.data.ActorPoolStrategy(size=size), num_gpus=gpus_per_worker or None,
        num_cpus=cpus_per_actor, batch_size=batch_size)
    bar = Progress(len(records), progress, f"attribute_dataset ({method}, ray x{size})")
    try:
        for batch in mapped.iter_batches(batch_size=None):
            rows = [json.loads(r) for r in batch["row"]]
            write_shard(out, rows)
            bar.update(rows)
    except ray.exceptions.RayError as exc:  # e.g. an actor that could not load the model: say it plainly
        cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise AttrWidgetsError(f"A Ray worker failed ({cause}). The shards written so far stay in {out}; fix the "
                               "cause and run again with resume=True.") from exc
    finally:
        bar.close()


def import_ray():
    try:
        import ray
        import ray.data  # Ray Data: map_batches, ActorPoolStrategy
    except ImportError as exc:
        raise AttrWidgetsError("engine='ray' needs Ray (with Ray Data): pip install 'attrwidgets[ray]' (or "
                               "pip install 'ray[data]'); engine='local' needs nothing more.") from exc
    return ray
