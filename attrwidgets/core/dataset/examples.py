"""One model, one example -> one row of the dataset's shards. The same class is the local engine's worker and
Ray's actor (an importable module, so Ray can build it on a worker): the model is loaded once per instance,
from a name or path, never pickled.

A failing example (empty text, longer than the context, non-finite gradients) becomes a row whose `status` is the
error message, and the run goes on; an interrupt is not an example's failure and propagates.
"""

from __future__ import annotations

import json

import numpy as np

from attrwidgets.errors import AttrWidgetsError

SPECIAL = ("depass", "lig")  # besides the registered token methods


def check_method(method: str) -> str:
    from attrwidgets.core.token.catalog import get_method  # the catalog registers every built-in method

    return method if method in SPECIAL else get_method(method).name  # unknown: a clear error with a suggestion


class ExampleAttributor:
    """Callable on a batch of records ({"id", "text"|"messages", "target"}) -> one row dict per record."""

    def __init__(self, model, method: str, options: dict, max_new_tokens: int, threads: int | None = None):
        import torch

        from attrwidgets.models import as_handle

        if threads:  # a Ray actor gets its CPUs' worth of threads, not the whole machine's
            torch.set_num_threads(threads)
        self.handle = as_handle(model)
        self.method, self.options, self.max_new_tokens = check_method(method), dict(options), int(max_new_tokens)

    def __call__(self, records: list[dict]) -> list[dict]:
        return [self.row(record) for record in records]

    def row(self, record: dict) -> dict:
        prompt = record.get("messages") or record.get("text")
        try:
            result = self.attribute(prompt, record.get("target"))
        except AttrWidgetsError as exc:
            return failed_row(record["id"], str(exc))
        except (RuntimeError, ValueError) as exc:  # torch / tokenizer errors on this one example
            return failed_row(record["id"], f"{type(exc).__name__}: {exc}")
        return ok_row(record["id"], result)

    def attribute(self, prompt, target):
        from attrwidgets.core.depass.decompose import depass
        from attrwidgets.core.token.session import attribute

        if not prompt:
            raise AttrWidgetsError("The example's text is empty.")
        options = dict(self.options)
        if self.method == "depass":
            d = depass(self.handle, prompt, max_new_tokens=self.max_new_tokens, target=target, progress=False,
                          **options)
            return d.as_attribution()
        if self.method == "lig":
            return lig_attribution(self.handle, prompt, options)
        return attribute(self.handle, prompt, method=self.method, max_new_tokens=self.max_new_tokens,
                            target=target, progress=False, **options)


def lig_attribution(handle, text, options: dict):
    """LIG's layer route (z -> z) at `layer` (default: the last block) as an Attribution: every position a
    target, read from that block's input at every position; completeness per target."""
    from attrwidgets.core.lig.compute import lig
    from attrwidgets.core.token.result import Attribution

    n_layers = handle.adapter.n_layers(handle.model)
    layer = options.pop("layer", n_layers - 1)
    r = lig(handle, text, granularity="layer", layers=[layer], **options)  # one block; lig checks the index
    layer = layer % n_layers
    T = r.length
    return Attribution(tokens=list(r.tokens), target_positions=list(range(T)), scores=r.z2z[layer], method="lig",
                       options={**r.options, "layer": layer}, model_id=handle.model_id, prompt=r.text,
                       completeness_error=r.completeness("layer", layer))


def ok_row(example_id: str, result) -> dict:
    tokens = result.tokens
    scores = np.nan_to_num(np.asarray(result.scores, np.float32), nan=0.0)  # NaN: a causal zero, never computed
    error = result.completeness_error
    return {
        "id": example_id, "status": "ok", "n_tokens": len(tokens),
        "token_text": [t.clean for t in tokens], "token_ids": [int(t.id) for t in tokens],
        "tokens_json": json.dumps([t.to_dict() for t in tokens]),
        "target_positions": [int(p) for p in result.target_positions],
        "target_tokens": [tokens[p].clean for p in result.target_positions],
        "scores": [row.tolist() for row in scores],
        "completeness": None if error is None else [float(e) for e in np.asarray(error, np.float32)],
        "prompt": result.prompt,
    }


def failed_row(example_id: str, message: str) -> dict:
    return {"id": example_id, "status": message or "failed", "n_tokens": 0, "token_text": [], "token_ids": [],
            "tokens_json": "[]", "target_positions": [], "target_tokens": [], "scores": [], "completeness": None,
            "prompt": ""}
