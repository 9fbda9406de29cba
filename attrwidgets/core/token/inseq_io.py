"""Inseq files: read_inseq() reads what Inseq's FeatureAttributionOutput.save() writes, to_inseq() (in
inseq_write.py, re-exported here) writes what its load() reads. Pure Python and numpy: Inseq is not a dependency.

Layouts read: Inseq 0.7 (`__instance_type__` records, tensors as base64 safetensors), Inseq 0.6 and earlier
(tensors as numpy blocks, "b64:"/"b64.gz:" or lists), use_primitives=True saves (plain dicts and lists), and any
of them gzipped (save(compress=True)). Records are matched by class name and never instantiated: nothing in the
file is imported, unpickled or evaluated. Decoder-only attributions only (encoder-decoder ones have source-side
scores that our Attribution has no place for).

Orientation: Inseq's target_attributions[p, j] is position p's score for generation step j; ours is scores[j, p].
Positions a step cannot see are NaN in Inseq and 0 here; a step whose column is all NaN is a row not computed.
A tensor with an extra axis becomes per_dim, and scores its L2 norm over that axis (Inseq's default view of
gradient methods, before its per-step normalisation, which we do not apply); Inseq's multi-dimensional outputs
(attention: layers, heads) become their mean over the extra axes, as Inseq shows them.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from pathlib import Path

import numpy as np

from attrwidgets.core.files import file_reader
from attrwidgets.core.token.inseq_arrays import decode_tensor
from attrwidgets.core.token.inseq_write import EXTRAS_KEY, OUTPUT_TYPE, STEP_SCORES, to_inseq
from attrwidgets.core.token.result import Attribution
from attrwidgets.core.tokens import SEGMENTS, Token
from attrwidgets.errors import AttrWidgetsError

__all__ = ["GZIP_MAGIC", "is_inseq_output", "read_inseq", "to_inseq"]

GZIP_MAGIC = b"\x1f\x8b"
MAX_INFLATED = 1 << 30  # a gzip that inflates past 1 GiB is refused, not unpacked into memory
_FIX = ("Pass a file written by Inseq's FeatureAttributionOutput.save() or Attribution.to_inseq(), or copy the "
        "file again if it was cut off")
_SPECIALS = {"<s>", "</s>", "<unk>", "<pad>", "<bos>", "<eos>", "[CLS]", "[SEP]", "[PAD]", "[MASK]"}


def _error(where: str, problem: str, fix: str = _FIX) -> AttrWidgetsError:
    return AttrWidgetsError(f"Cannot read {where}: {problem}. {fix}.")


def is_inseq_output(data) -> bool:
    """A parsed JSON value is an Inseq FeatureAttributionOutput: its record, or a use_primitives dict."""
    if not isinstance(data, dict):
        return False
    kind = data.get("__instance_type__")
    if isinstance(kind, list) and len(kind) == 2:
        return kind[1] == OUTPUT_TYPE
    return "sequence_attributions" in data and "info" in data


def _inflate(where: str, raw: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
            data = f.read(MAX_INFLATED + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise _error(where, f"the gzip data is damaged or cut off ({exc})") from None
    if len(data) > MAX_INFLATED:
        raise _error(where, f"it inflates past {MAX_INFLATED >> 20} MiB", "Split the attribution into smaller "
                            "files (Inseq's save(split_sequences=True))")
    return data


def _parse(where: str, raw: bytes):
    if raw.startswith(GZIP_MAGIC):
        raw = _inflate(where, raw)
    if not raw.strip():
        raise _error(where, "the file is empty (truncated)")
    try:
        # Inseq saves with allow_nan=True, so NaN may appear in list-written arrays; json reads it as float
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise _error(where, f"not UTF-8 text (bad byte at offset {exc.start}), so not an Inseq JSON") from None
    except json.JSONDecodeError as exc:
        raise _error(where, f"truncated or not JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None


def _attributes(where: str, value, expected: str, name: str) -> dict:
    """The attributes of a record whose class name ends with `expected`; a use_primitives dict is its own."""
    if not isinstance(value, dict):
        raise _error(where, f"{name} must be an object, got {type(value).__name__}")
    if "__instance_type__" not in value:
        return value
    kind = value["__instance_type__"]
    if not (isinstance(kind, list) and len(kind) == 2 and isinstance(kind[1], str)):
        raise _error(where, f"{name}.__instance_type__ must be [module, class name], got {kind!r}")
    if not kind[1].endswith(expected):
        raise _error(where, f"{name} is a {kind[1]!r}, expected a {expected}")
    attrs = value.get("attributes")
    if not isinstance(attrs, dict):
        raise _error(where, f"{name}.attributes must be an object")
    return attrs


def _int(where: str, value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _error(where, f"{name} must be an integer, got {value!r}")
    return value


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet backwards: the printable character each byte was shown as -> the byte."""
    shown = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars, extra = {b: b for b in shown}, 0
    for b in range(256):
        if b not in chars:
            chars[b], extra = 256 + extra, extra + 1
    return {chr(c): b for b, c in chars.items()}


def _clean_texts(pieces: list[str]) -> list[str]:
    """Each piece as the text it reads as. Inseq keeps the tokenizer's pieces ("Ġthe", "▁the"); a file whose
    pieces carry byte-level marks is decoded through the byte alphabet (so "Ã©" reads "é"), else "▁" is a space."""
    decoder = _byte_decoder()
    byte_level = any(c in p for p in pieces for c in "ĠĊ") and all(c in decoder for p in pieces for c in p)
    if byte_level:
        return [bytes(decoder[c] for c in p).decode("utf-8", "replace") for p in pieces]
    return [p.replace("▁", " ").replace("Ġ", " ").replace("Ċ", "\n") for p in pieces]


def _tokens(where: str, target: list, start: int, extras: dict | None) -> list[Token]:
    pairs = []
    for i, item in enumerate(target):
        t = _attributes(where, item, "TokenWithId", f"target[{i}]")
        if not isinstance(t.get("token"), str):
            raise _error(where, f"target[{i}].token must be a string")
        pairs.append((t["token"], _int(where, t.get("id"), f"target[{i}].id")))
    ours = extras.get("tokens") if extras else None
    if isinstance(ours, list) and len(ours) == len(pairs) and all(
            isinstance(o, list) and len(o) == 3 and isinstance(o[0], str) and isinstance(o[2], bool) for o in ours):
        # written by to_inseq: our clean text, segment and special flag come back as they were
        return [Token(tid, text, o[0], o[1] if o[1] in SEGMENTS else "prompt", o[2])
                for (text, tid), o in zip(pairs, ours)]
    cleans = _clean_texts([text for text, _ in pairs])
    return [Token(tid, text, clean, "prompt" if i < start else "generated",
                  (text.startswith("<|") and text.endswith("|>")) or text in _SPECIALS)
            for i, ((text, tid), clean) in enumerate(zip(pairs, cleans))]


def _scores(where: str, tensor: np.ndarray, start: int, kind: str, scores_from: str):
    """(n_targets, n_positions) scores, per_dim or None, from Inseq's (n_positions, n_steps, ...) tensor."""
    n_positions, n_steps = tensor.shape[:2]
    per_dim = None
    if tensor.ndim == 2:
        reduced = tensor
    elif kind.startswith("MultiDimensional"):
        reduced = tensor.reshape(n_positions, n_steps, -1).mean(-1)
    else:
        flat = tensor.reshape(n_positions, n_steps, -1)
        reduced = flat.sum(-1) if scores_from == "sum" else np.linalg.norm(flat, axis=-1)
        per_dim = np.swapaxes(flat, 0, 1).copy() if tensor.ndim == 3 else None
    scores = np.swapaxes(reduced, 0, 1).astype(np.float32)
    if np.isinf(scores).any():
        raise _error(where, "target_attributions holds an infinite value")
    seen = np.arange(n_positions)[None, :] < (start + np.arange(n_steps))[:, None]
    missing = np.isnan(scores) & seen
    not_computed = missing.sum(1) == seen.sum(1)
    damaged = missing.any(1) & ~not_computed
    if damaged.any():
        step = int(np.flatnonzero(damaged)[0])
        raise _error(where, f"target_attributions has NaN at a position that generation step {step} sees, where "
                            "Inseq always writes a score")
    scores[~seen] = 0.0
    scores[not_computed] = np.nan
    if per_dim is not None:
        per_dim[~seen] = 0.0
        per_dim[not_computed] = np.nan
    return scores, per_dim


def _sequence(where: str, seq, info: dict, index: int, extras: dict | None) -> Attribution:
    attrs = _attributes(where, seq, "FeatureAttributionSequenceOutput", f"sequence_attributions[{index}]")
    kind = seq.get("__instance_type__", [None, "FeatureAttributionSequenceOutput"])[1]
    target = attrs.get("target")
    if not isinstance(target, list) or not target:
        raise _error(where, "the sequence's 'target' must be a non-empty list of tokens")
    if attrs.get("source_attributions") is not None:
        raise _error(where, "it is an encoder-decoder attribution (it has source_attributions); attrwidgets "
                            "reads decoder-only ones", "Attribute a decoder-only model with Inseq")
    tensor = decode_tensor(f"{where}, target_attributions", attrs.get("target_attributions"))
    if tensor is None:
        raise _error(where, "the sequence has no target_attributions")
    start = _int(where, attrs.get("attr_pos_start", 0), "attr_pos_start")
    end = attrs.get("attr_pos_end")
    end = len(target) if end is None else min(_int(where, end, "attr_pos_end"), len(target))
    want = (len(target), end - start)
    if not 1 <= start <= end or tensor.ndim < 2 or tensor.shape[:2] != want:
        raise _error(where, f"target_attributions has shape {tensor.shape}, but the {len(target)} target tokens "
                            f"and attr_pos_start..end = {start}..{end} need ({want[0]}, {want[1]}, ...)")
    scores_from = extras.get("scores_from") if extras else None
    scores, per_dim = _scores(where, tensor, start, kind, scores_from)
    fields = {}
    step_scores = attrs.get("step_scores") or {}
    if not isinstance(step_scores, dict):
        raise _error(where, "step_scores must be an object")
    for name, field in STEP_SCORES.items():
        values = decode_tensor(f"{where}, step_scores.{name}", step_scores.get(name))
        if values is not None:
            if values.shape != (want[1],):
                raise _error(where, f"step_scores.{name} has shape {values.shape}, expected ({want[1]},)")
            fields[field] = values
    return _result(_tokens(where, target, start, extras), start, scores, per_dim, fields, info, extras, index)


def _result(tokens, start, scores, per_dim, fields, info, extras, index) -> Attribution:
    texts = info.get("input_texts")
    prompt = texts[index] if isinstance(texts, list) and len(texts) > index and isinstance(texts[index], str) \
        else "".join(t.clean for t in tokens[:start])
    options = {k: info[k] for k in ("attributed_fn", "attribution_args", "generation_args") if k in info}
    method, model_id = info.get("attribution_method"), info.get("model_name")
    timestamp = ""  # unknown, not "now": a loaded result was not computed now
    if extras:
        prompt = extras["prompt"] if isinstance(extras.get("prompt"), str) else prompt
        options = extras["options"] if isinstance(extras.get("options"), dict) else options
        timestamp = extras["timestamp"] if isinstance(extras.get("timestamp"), str) else timestamp
        ce = extras.get("completeness_error")
        if isinstance(ce, list) and len(ce) == len(scores):
            fields["completeness_error"] = np.array([np.nan if v is None else v for v in ce], dtype=np.float32)
        if extras.get("signed_scores_from_sum") is True and per_dim is not None:
            fields["signed_scores"] = per_dim.sum(-1)
    return Attribution(
        tokens=tokens, target_positions=list(range(start, start + len(scores))), scores=scores,
        method=method if isinstance(method, str) and method else "unknown", options=options,
        model_id=model_id if isinstance(model_id, str) else "", timestamp=timestamp, prompt=prompt,
        per_dim=per_dim, **fields,
    )


@file_reader("an Inseq FeatureAttributionOutput JSON", _FIX)
def read_inseq(path, *, sequence: int = 0) -> Attribution:
    """The Attribution of one sequence of an Inseq file (plain or gzipped JSON, any layout named in this module's
    docstring). A file holds one sequence per attributed input; `sequence` picks one (0, the first, by default).
    Malformed files raise AttrWidgetsError naming what is wrong."""
    path = Path(path)
    where = f"Inseq file '{path}'"
    data = _parse(where, path.read_bytes())
    if not is_inseq_output(data):
        found = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
        kind = data.get("__instance_type__") if isinstance(data, dict) else None
        problem = f"it holds a {kind[1]!r}" if isinstance(kind, list) and len(kind) == 2 else f"found {found}"
        raise _error(where, f"not an Inseq FeatureAttributionOutput ({problem})")
    out = _attributes(where, data, OUTPUT_TYPE, "the file")
    seqs = out.get("sequence_attributions")
    if not isinstance(seqs, list) or not seqs:
        raise _error(where, "sequence_attributions must be a non-empty list")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or not 0 <= sequence < len(seqs):
        raise AttrWidgetsError(f"sequence={sequence!r} is out of range: {path} holds {len(seqs)} sequence(s); "
                               f"pass sequence=0..{len(seqs) - 1}.")
    info = out.get("info") if isinstance(out.get("info"), dict) else {}
    # our own block describes the one sequence to_inseq writes; a file merged from several is Inseq's to read
    extras = info.get(EXTRAS_KEY) if isinstance(info.get(EXTRAS_KEY), dict) and len(seqs) == 1 else None
    return _sequence(where, seqs[sequence], info, sequence, extras)
