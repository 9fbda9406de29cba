"""aw.estimate: how long a computation will take and how much memory it needs, before it runs; and the
up-front refusal of work that would not fit in memory (docs/methods/estimate.md).

Seconds come from the cost models (core/cost_models.py) and three rates measured once per device and dtype
(a weight-sized matrix product, attention-sized batched products, a memory-bound pass over 64 MiB), about
0.3 s on a CPU. Memory needs no measurement: it is the model's own arithmetic. A computation whose peak would not
fit the memory available now is refused with its estimate and a way to reduce it, instead of letting the
operating system kill the kernel halfway through.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass

import torch

from attrwidgets.core import cost_models
from attrwidgets.core.cost_models import Sizes
from attrwidgets.core.costs import Cost, ModelShape, Work
from attrwidgets.errors import AttrWidgetsError

FUNCTIONS = tuple(cost_models.MODELS)
# Default number of tokens each function generates (or forces) after the prompt.
NEW_TOKENS = {"attribute": 8, "layer_ig": 8, "dlig": 32}
MEMORY_LIMIT_ENV = "ATTRWIDGETS_MEMORY_LIMIT"  # e.g. "8GiB": refuse work above it even with more free
USABLE_SHARE = 0.8  # of the memory available now: the estimate is a model, leave it room


@dataclass(frozen=True)
class Estimate:
    seconds: float
    peak_bytes: int  # added to what is already loaded (the model)
    device: str

    def __str__(self) -> str:
        return f"about {format_seconds(self.seconds)} and {format_bytes(self.peak_bytes)} on {self.device}"


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{max(seconds, 0.1):.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_bytes(n: float) -> str:
    if n >= 2**29:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


# -- device rates, measured once ---------------------------------------------------------------------------
_RATES: dict[tuple[str, torch.dtype, int], tuple[float, float, float]] = {}
_RATES_LOCK = threading.Lock()


def _best_time(run, device: torch.device, repeats: int = 3) -> float:
    run()  # warm-up: kernels chosen, memory allocated
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return max(best, 1e-6)


def device_rates(device: torch.device, dtype: torch.dtype) -> tuple[float, float, float]:
    """(dense FLOP/s, attention-product FLOP/s, memory-bound bytes/s) on this device, measured once."""
    key = (str(device), dtype, torch.get_num_threads())
    with _RATES_LOCK:
        if key not in _RATES:
            # Sizes of a long prompt's work: tensors larger than the CPU's caches, as the eager attention's are.
            with torch.no_grad():
                a = torch.randn(2048, 1024, device=device, dtype=dtype)
                w = torch.randn(2048, 1024, device=device, dtype=dtype)
                dense = 2 * 2048 * 1024 * 2048 / _best_time(lambda: a @ w.t(), device)
                q = torch.randn(8, 1024, 64, device=device, dtype=dtype)
                mixing = 2 * 8 * 1024 * 1024 * 64 / _best_time(lambda: q @ q.transpose(1, 2), device)
                s = torch.randn(16, 1024, 1024, device=device, dtype=torch.float32)
                passes = s.numel() * 4 / _best_time(lambda: s * 0.5, device)
            _RATES[key] = (dense, mixing, passes)
        return _RATES[key]


def seconds_for(work: Work, device: torch.device, dtype: torch.dtype) -> float:
    dense, mixing, passes = device_rates(device, dtype)
    return work.dense / dense + work.mixing / mixing + work.passes / passes


# -- memory --------------------------------------------------------------------------------------------
def parse_bytes(value, name: str | None = None) -> int:
    """8589934592, "8GiB", "8G" (binary), "8GB" (decimal, as disks count), "512 MiB", "100" -> bytes.
    `name` goes into the error message (e.g. "memory_budget")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return int(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?)(B?)\s*", str(value), re.IGNORECASE)
    size = 0
    if match and not (match.group(3) and not match.group(2)):
        power = " KMGT".index(match.group(2).upper() or " ")
        decimal = match.group(4) and not match.group(3) and power
        size = int(float(match.group(1)) * (1000 if decimal else 1024) ** power)
    if size <= 0 or isinstance(value, bool):
        where = f"{name}={value!r}" if name else repr(value)
        raise AttrWidgetsError(f"{where} is not a size: give a positive number of bytes or a string like '8GiB'.")
    return size


def available_bytes(device: torch.device) -> int:
    """Memory the computation may take now: free device memory on a GPU, MemAvailable on the CPU (page cache
    the kernel can drop included); never more than ATTRWIDGETS_MEMORY_LIMIT when set."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
    else:
        free = _mem_available()
    limit = os.environ.get(MEMORY_LIMIT_ENV)
    return min(free, parse_bytes(limit)) if limit else free


def _mem_available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


# -- the public estimate -------------------------------------------------------------------------------------
# What lowers the memory of each function, for the refusal message.
FIXES = {
    "attribute": "Shorten the prompt, or attribute fewer targets (max_new_tokens=, or rows= of a session).",
    "layer_ig": "Shorten the prompt, or attribute fewer targets (max_new_tokens=).",
    "depass": ("A token-level stack holds one component per token, (T + 1) x T x d_model floats: shorten the "
               "prompt, or seed at fewer components (level='head' or 'module'), or pass start_layer= to "
               "decompose from a later layer on a prefix of the prompt."),
    "head_contributions": "Shorten the prompt, or pass position= to explain an earlier token (later ones drop).",
    "attribution_graph": "Shorten the prompt (the captured forward keeps every layer's attention).",
    "lig": "Shorten the text, or lower batch_size= (path points per chunk).",
    "dlig": "Shorten the prompt or gen_length=, or lower batch_size= (path points per chunk).",
}


def sizes_for(handle, fn_name: str, n_prompt: int, n_new: int, options: dict, *, generates: bool = True,
              rows: int | None = None) -> Sizes:
    from attrwidgets.core.forward import step_batch_size
    from attrwidgets.core.frozen_ops import default_budget

    T, n = n_prompt + n_new, max(1, n_new if rows is None else rows)
    points = step_batch_size(handle, T, n) if fn_name in ("attribute", "layer_ig", "dlig") else 1
    if options.get("batch_size"):
        points = int(options["batch_size"])
    budget = float(options.get("chunk_budget") or default_budget(handle.device))
    return Sizes(n_prompt, n_new, budget, points, generates=generates, rows=rows)


def cost_of(handle, fn_name: str, n_prompt: int, n_new: int, options: dict, *, generates: bool = True,
            rows: int | None = None, shape: ModelShape | None = None) -> Cost:
    if fn_name not in cost_models.MODELS:
        raise AttrWidgetsError(f"No estimate for {fn_name!r}: use one of {', '.join(FUNCTIONS)}.")
    options = _with_block(handle, fn_name, options)
    if fn_name == "lig" and "routes" not in options:
        from attrwidgets.core.lig.baselines import resolve_granularity

        options = {**options, "routes": resolve_granularity(options.get("granularity", "all"))}
    sizes = sizes_for(handle, fn_name, n_prompt, n_new, options, generates=generates, rows=rows)
    shape = ModelShape.of(handle) if shape is None else shape
    cost = cost_models.MODELS[fn_name](shape, sizes, options)
    return Cost(cost.work, cost.peak_bytes + shape.runtime_bytes)


def _with_block(handle, fn_name: str, options: dict) -> dict:
    """Layer IG and DLIG resume the forward after a layer: the cost models need its block index."""
    if fn_name not in ("layer_ig", "dlig") and options.get("method") != "layer_integrated_gradients":
        return options
    from attrwidgets.core.dlig.layers import resolve_layer

    spec = resolve_layer(handle, options.get("layer"))
    method = {"layer_ig": "layer_integrated_gradients"}.get(fn_name, options.get("method"))
    return {**options, "method": method, "block": max(spec.layer, 0)}  # the embeddings (-1): the whole model runs


def estimate(fn_name: str, model, prompt, **options) -> Estimate:
    """How long `fn_name(model, prompt, **options)` will take and how much memory it will add, on this device.

    fn_name: "attribute" (pass method=), "layer_ig", "depass", "head_contributions", "attribution_graph",
    "lig" or "dlig". The figures come from a model of each method's work (calibrated once per device): expect
    them within about 2x of a run; adaptive integrated gradients gives its upper bound (every node used).
    """
    from attrwidgets.core.sequence import encode_prompt
    from attrwidgets.models import as_handle

    if fn_name not in cost_models.MODELS:
        raise AttrWidgetsError(f"No estimate for {fn_name!r}: use one of {', '.join(FUNCTIONS)}.")
    handle = as_handle(model)
    ids = encode_prompt(handle.tokenizer, prompt)[0]
    n_new = options.get("gen_length", options.get("max_new_tokens", NEW_TOKENS.get(fn_name, 0)))
    if isinstance(options.get("target"), str):
        n_new = len(handle.tokenizer(options["target"], add_special_tokens=False)["input_ids"])
    return as_estimate(handle, cost_of(handle, fn_name, len(ids), int(n_new), options))


def as_estimate(handle, cost: Cost) -> Estimate:
    dtype = handle.adapter.embedding(handle.model).weight.dtype
    return Estimate(seconds_for(cost.work, handle.device, dtype), int(cost.peak_bytes), str(handle.device))


def refuse_if_too_big(handle, fn_name: str, n_prompt: int, n_new: int, options: dict, *, generates: bool = True,
                      rows: int | None = None) -> Cost | None:
    """Raise before any heavy work when the computation's peak memory would not fit what is available now;
    else return its cost (None when the model's shape cannot be read: the function's own checks then say why)."""
    try:
        shape = ModelShape.of(handle)
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    try:
        cost = cost_of(handle, fn_name, n_prompt, n_new, options, generates=generates, rows=rows, shape=shape)
    except (TypeError, ValueError):
        return None  # a malformed option (n_steps="many"): the function's own check says what is wrong
    allowed = USABLE_SHARE * available_bytes(handle.device)
    if cost.peak_bytes <= allowed:
        return cost
    est = as_estimate(handle, cost)
    raise AttrWidgetsError(
        f"{options.get('method', fn_name)} on {n_prompt + n_new} tokens needs {est}, more than the {format_bytes(allowed)} this "
        f"computation can use now ({int(USABLE_SHARE * 100)}% of the memory available). {FIXES[fn_name]} "
        f"{MEMORY_LIMIT_ENV} lowers the limit; aw.estimate() gives the figures without running.")
