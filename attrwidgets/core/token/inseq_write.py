"""Attribution.to_inseq(): an Attribution as Inseq's saved FeatureAttributionOutput (the layout of Inseq 0.7's
save(): `__instance_type__` records, tensors as base64 safetensors, step_attributions null), so that
inseq.FeatureAttributionOutput.load opens it (load(path, decompress=True) for a .gz file). core/token/inseq_io.py
reads such files back. Reads the result's attributes only, so result.py calls it without an import cycle.

Orientation: our scores are rows = targets, columns = sources; Inseq's target_attributions are indexed
[position, generation step], so the matrix is written transposed, (n_positions, n_targets[, D]). Where a step
cannot see a position (p >= that target's position) Inseq holds NaN and we hold 0; the writer puts NaN there, as
Inseq does. A row we did not compute (all NaN) becomes an all-NaN column: Inseq has no "not computed" mark, and
NaN is what it shows for positions without a score. docs/methods/token.md, "Inseq files", lists what is kept.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import numpy as np

from attrwidgets.core.files import write_bytes_atomic, write_text_atomic
from attrwidgets.core.token.inseq_arrays import safetensor_bytes
from attrwidgets.errors import AttrWidgetsError

INSEQ_MODULE = "inseq.data.attribution"
TOKEN_TYPE = ("inseq.utils.typing", "TokenWithId")
OUTPUT_TYPE = "FeatureAttributionOutput"
# Inseq's class for per-dimension (gradient) scores; its default view is the L2 norm over the last axis.
GRANULAR_TYPE = "GranularFeatureAttributionSequenceOutput"
# One score per token, no extra axis (Inseq's class for occlusion-like methods): our 2-d scores.
COARSE_TYPE = "CoarseFeatureAttributionSequenceOutput"
EXTRAS_KEY = "attrwidgets"  # our own block inside `info`: Inseq keeps info as given and reads none of it
STEP_SCORES = {"probability": "target_prob", "entropy": "target_entropy"}  # Inseq's step function -> our field


def record(type_name: tuple[str, str], attributes: dict) -> dict:
    """What Inseq's json encoder writes for an object (use_primitives=False)."""
    return {"__instance_type__": list(type_name), "attributes": attributes}


def _encode(array: np.ndarray) -> str:
    return base64.b64encode(safetensor_bytes(array)).decode("ascii")


def _target_start(a) -> int:
    positions = [int(p) for p in a.target_positions]
    if not positions:
        raise AttrWidgetsError("This result has no targets: Inseq files hold at least one generated token. "
                               "Attribute a prompt with at least one generated or forced token.")
    start = positions[0]
    if positions != list(range(start, start + len(positions))) or start < 1:
        raise AttrWidgetsError(
            f"Inseq files need the targets at consecutive positions after a non-empty prefix; this result has "
            f"targets at {positions[:6]}{'...' if len(positions) > 6 else ''} (a word-aggregated result?). "
            "Export the token-level result (before aggregate_words()) instead."
        )
    return start


def _scores_from(a) -> str:
    """How our scores follow from per_dim, if they do: "l2" (saliency, aggregate="norm"), "sum" (signed
    aggregate), or "" (no per_dim, or scores computed otherwise: then the 2-d scores are written instead)."""
    if a.per_dim is None:
        return ""
    per_dim = np.asarray(a.per_dim, dtype=np.float32)
    if per_dim.ndim != 3 or per_dim.shape[:2] != a.scores.shape:
        return ""
    computed = a.computed_rows
    for name, reduced in (("l2", np.linalg.norm(per_dim, axis=-1)), ("sum", per_dim.sum(-1))):
        if np.allclose(reduced[computed], a.scores[computed], rtol=1e-5, atol=1e-7, equal_nan=True):
            return name
    return ""


def _tensor(a, start: int, scores_from: str) -> np.ndarray:
    """(n_positions, n_targets[, D]): ours transposed, NaN where a step cannot see a position or was not computed."""
    source = np.asarray(a.per_dim if scores_from else a.scores, dtype=np.float32)
    if np.isinf(source).any():
        raise AttrWidgetsError("The scores hold inf, a numerical bug rather than a value to save. Recompute "
                               "(a smaller step size or float32), or set those entries to NaN before saving.")
    tensor = np.swapaxes(source, 0, 1).copy()
    n_positions, n_targets = tensor.shape[:2]
    unseen = np.arange(n_positions)[:, None] >= (start + np.arange(n_targets))[None, :]
    tensor[unseen] = np.nan
    tensor[:, ~a.computed_rows] = np.nan
    return tensor


def _extras(a, scores_from: str) -> dict:
    """What Inseq's layout has no place for, so that read_inseq gives our result back."""
    signed = a.signed_scores is not None and scores_from == "l2" and np.allclose(
        np.asarray(a.per_dim, dtype=np.float32).sum(-1)[a.computed_rows], a.signed_scores[a.computed_rows],
        rtol=1e-5, atol=1e-7)
    try:
        options = json.loads(json.dumps(a.options, allow_nan=False, default=lambda v: v.item()))
    except (TypeError, ValueError, AttributeError) as exc:
        raise AttrWidgetsError(
            f"options are not JSON-able ({exc}): options must hold only str/int/float/bool/None, lists and "
            "dicts of them. Convert tensors or objects in Attribution.options to plain values before saving."
        ) from None
    ce = a.completeness_error
    return {
        "format": 1,
        "method": a.method,
        "scores_from": scores_from or "tensor",
        "signed_scores_from_sum": bool(signed),
        "options": options,
        "timestamp": a.timestamp,
        "prompt": a.prompt,
        "tokens": [[t.clean, t.segment, bool(t.special)] for t in a.tokens],
        "completeness_error": None if ce is None else [None if np.isnan(v) else float(v) for v in ce],
    }


def to_inseq(a, path=None) -> dict:
    """The result as Inseq's FeatureAttributionOutput JSON dict; written to `path` when given (gzip when the
    name ends in .gz, as Inseq's save(compress=True)). One sequence: source = the prefix before the first
    target, target = every token, target_attributions as described in this module's docstring."""
    start = _target_start(a)
    scores_from = _scores_from(a)
    tokens = [record(TOKEN_TYPE, {"id": int(t.id), "token": t.text}) for t in a.tokens]
    step_scores = {name: _encode(np.asarray(getattr(a, field), dtype=np.float32))
                   for name, field in STEP_SCORES.items() if getattr(a, field) is not None}
    end = start + a.n_targets
    sequence = record((INSEQ_MODULE, GRANULAR_TYPE if scores_from else COARSE_TYPE), {
        "attr_pos_end": end,
        "attr_pos_start": start,
        "sequence_scores": {},
        "source": tokens[:start],
        "source_attributions": None,  # decoder-only: the prefix is part of the target
        "step_scores": step_scores,
        "target": tokens,
        "target_attributions": _encode(_tensor(a, start, scores_from)),
    })
    text = "".join(t.clean for t in a.tokens)
    info = {
        "attr_pos_end": end,
        "attr_pos_start": start,
        "attribute_target": False,
        "attribution_method": a.method,  # our method names are Inseq's for the methods both have
        "constrained_decoding": False,
        "generated_texts": [text],  # Inseq's "generated" text is the prompt and its continuation
        "include_eos_baseline": False,
        "input_texts": [a.prompt or "".join(t.clean for t in a.tokens[:start])],
        "model_class": "",
        "model_name": a.model_id,
        "output_step_attributions": False,
        "step_scores": list(step_scores),
        "tokenizer_class": "",
        "tokenizer_name": None,
        EXTRAS_KEY: _extras(a, scores_from),
    }
    out = record((INSEQ_MODULE, OUTPUT_TYPE),
                 {"info": info, "sequence_attributions": [sequence], "step_attributions": None})
    if path is not None:
        # Inseq writes indent=4, sorted keys; no NaN can reach the JSON itself (tensors are base64)
        body = json.dumps(out, indent=4, sort_keys=True, allow_nan=False)
        if str(path).endswith(".gz"):
            write_bytes_atomic(Path(path), gzip.compress(body.encode("utf-8"), mtime=0))
        else:
            write_text_atomic(Path(path), body)
    return out
