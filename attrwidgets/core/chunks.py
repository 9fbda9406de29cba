"""Work in memory-sized chunks, and what to do when a chunk does not fit after all.

A chunk size comes from an estimate of the activations (forward.step_batch_size, lig.routes.points_per_chunk);
the estimate can be wrong (another process on the GPU, fragmentation, a model it does not know). On a CUDA
out-of-memory error the chunk is halved and the same span retried, so a long computation finishes more slowly
instead of failing; every number stays the same, since no result depends on the chunk size
(docs/methods/token.md, "Same inputs, same numbers"). The size that worked is returned and kept for the next
calls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import torch

from attrwidgets.core.forward import ComputationCancelled
from attrwidgets.errors import AttrWidgetsError

log = logging.getLogger("attrwidgets")


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def run_in_chunks(n: int, chunk: int, run: Callable[[int, int], None],
                  cancel: threading.Event | None = None) -> int:
    """Calls run(start, stop) over [0, n) in spans of at most `chunk` items; `run` must keep nothing of a span
    that raised. On out-of-memory the span is retried at half the size (down to 1). A set `cancel` stops it
    before the next span. Returns the chunk size that worked."""
    chunk, start = max(1, int(chunk)), 0
    while start < n:
        if cancel is not None and cancel.is_set():
            raise ComputationCancelled("Computation cancelled: a newer request replaced it.")
        stop = min(n, start + chunk)
        try:
            run(start, stop)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            if chunk == 1:
                raise AttrWidgetsError(
                    "Out of device memory with chunks of a single item (path point or position): use a shorter "
                    "prompt, load the model "
                    "in bfloat16 (aw.load_model(..., dtype=torch.bfloat16)), or run it on the CPU (device='cpu')."
                ) from exc
            chunk = max(1, chunk // 2)
            log.warning("attrwidgets: out of device memory; retrying with chunks of %d", chunk)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        start = stop
    return chunk
