"""Result objects of DePass: Decomposition (components of the final state) and HeadContributions (the grid).

Both save as a JSON header plus a safetensors file beside it (core/bundle_io.py) and load back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from attrwidgets.core import frames
from attrwidgets.core.bundle_io import (
    bundle_dict,
    load_bundle,
    require,
    require_array,
    save_bundle,
    tokens_from_header,
)
from attrwidgets.core.depass.token_view import as_attribution
from attrwidgets.core.files import file_reader
from attrwidgets.core.frozen import softcap_ratio
from attrwidgets.core.rendering import PageExport
from attrwidgets.core.tokens import Token
from attrwidgets.errors import AttrWidgetsError

DECOMPOSITION_SCHEMA = "attrwidgets.decomposition/1"
HEADS_SCHEMA = "attrwidgets.head_contributions/1"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Decomposition(PageExport):
    """An exact additive split of the model's state: sum over components == the real state.

    states[q, m] is component m's part of the state at position q, after the final norm when the
    decomposition runs to the last layer (end_layer == n_layers), else the residual stream after block
    end_layer - 1. components[m] names component m; the last one is always "bias".
    """

    tokens: list[Token]
    components: list[str]  # (M,) labels; order is part of the API (see attrwidgets.depass)
    states: np.ndarray  # (T, M, D) float32; rows positions, then components, then hidden
    completeness_error: float  # max over q of ||sum_m states[q, m] - h[q]|| / ||h[q]||
    level: str
    options: dict = field(default_factory=dict)
    model_id: str = ""
    prompt: str = ""
    timestamp: str = field(default_factory=_now_iso)
    # (weight (V, D), bias, final soft-cap or None) of the model's unembedding, kept in memory only (not saved).
    unembedding: object = field(default=None, repr=False, compare=False)
    tokenizer: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.states = np.asarray(self.states, dtype=np.float32)
        t, m = len(self.tokens), len(self.components)
        if self.states.ndim != 3 or self.states.shape[:2] != (t, m):
            raise AttrWidgetsError(
                f"states must be (T, M, D) = ({t}, {m}, D) for {t} tokens and {m} components, "
                f"got {self.states.shape}."
            )

    @property
    def total(self) -> np.ndarray:
        """(T, D) sum over components: the real state up to completeness_error."""
        return self.states.sum(axis=1)

    def logit_scores(self, token) -> np.ndarray:
        """(T, M): each component's contribution to the logit of `token` (a string or an id) at every
        position, i.e. states @ W_U[token]. Needs the decomposition to run to the last layer."""
        if self.unembedding is None:
            raise AttrWidgetsError(
                "logit_scores needs the model's unembedding: this Decomposition was loaded from a file or "
                "stops before the last layer. Recompute it with attrwidgets.depass(model, ...)."
            )
        weight, bias, cap = self.unembedding
        token_id = resolve_token_id(self.tokenizer, token, weight.shape[0])
        row = weight[token_id].detach().float().cpu().numpy()
        scores = self.states @ row
        if bias is not None:  # an LM-head bias is a constant: it belongs to the bias component
            scores[:, -1] += float(bias[token_id])
        if cap:  # Gemma 2's final soft-cap, frozen as a scale per position (docs/methods/depass.md)
            scores *= softcap_ratio(torch.from_numpy(scores.sum(1, dtype=np.float32)), cap).numpy()[:, None]
        return scores.astype(np.float32)

    def as_attribution(self):
        """A token-level decomposition as an Attribution (rows: each target token's logit, from the state before
        it; columns: each source token's part), for the TokenMatrix and every Attribution export
        (core/depass/token_view.py)."""
        return as_attribution(self)

    def to_dataframe(self, token=None):
        """Long format, one row per (position, component): the component's contribution to the logit of
        `token` (a string or an id) when given, else the L2 norm of its state (core/frames.py)."""
        return frames.dataframe(frames.decomposition_table(self, token))

    def _bundle(self) -> tuple[dict, dict]:
        header = {"tokens": [t.to_dict() for t in self.tokens], "components": list(self.components),
                  "completeness_error": float(self.completeness_error), "level": self.level,
                  "options": self.options, "model_id": self.model_id, "prompt": self.prompt,
                  "timestamp": self.timestamp}
        return header, {"states": self.states}

    def to_dict(self) -> dict:
        """Our schema (`schema`, `version`): the saved header and the states as nested lists."""
        return bundle_dict(DECOMPOSITION_SCHEMA, *self._bundle())

    def save(self, path) -> Path:
        """A JSON header + safetensors beside it (no pickle); aw.load_decomposition reads it. Returns the JSON path."""
        return save_bundle(path, DECOMPOSITION_SCHEMA, *self._bundle())


@file_reader('a saved Decomposition bundle', 'Pass the path given to Decomposition.save(), with both files')
def load_decomposition(path) -> Decomposition:
    header, arrays = load_bundle(path, DECOMPOSITION_SCHEMA)
    where = str(path)
    tokens = tokens_from_header(header, where)
    components = require(header, where, "components", list)
    states = require_array(arrays, where, "states", (len(tokens), len(components), None))
    return Decomposition(
        tokens=tokens, components=[str(c) for c in components], states=states,
        completeness_error=float(require(header, where, "completeness_error", (int, float))),
        level=require(header, where, "level", str), options=require(header, where, "options", dict),
        model_id=str(header.get("model_id", "")), prompt=str(header.get("prompt", "")),
        timestamp=str(header.get("timestamp", "")),
    )


@dataclass
class HeadContributions(PageExport):
    """How much every attention head contributes to one target logit (DePass head level, per layer).

    contributions[l, h]: head h of layer l's share of the logit of `target_id` at `position` (its output
    plus everything the later layers' MLPs assign to it). per_source[l, h, k]: the head's DIRECT write at
    `position` through source token k (attention weight times value, through the frozen final norm and the
    unembedding); summed over k it is the head's direct effect. attention[l, h]: the head's pattern
    (rows queries, columns keys).
    """

    tokens: list[Token]
    position: int  # the position whose next-token logit is explained
    target_id: int
    target_text: str
    contributions: np.ndarray  # (L, H)
    per_source: np.ndarray  # (L, H, T)
    attention: np.ndarray  # (L, H, T, T) rows queries, columns keys
    stream: np.ndarray  # (L,) contribution of the residual stream entering layer l (the rest of the split)
    bias: np.ndarray  # (L,) contribution of the bias component in the layer-l split
    logit: float  # the real logit of target_id at position
    completeness_error: float  # worst relative error of the per-layer splits
    options: dict = field(default_factory=dict)
    model_id: str = ""
    prompt: str = ""
    timestamp: str = field(default_factory=_now_iso)

    def __post_init__(self) -> None:
        self.contributions = np.asarray(self.contributions, dtype=np.float32)
        n_l, n_h = self.contributions.shape
        t = len(self.tokens)
        self.per_source = np.asarray(self.per_source, dtype=np.float32)
        self.attention = np.asarray(self.attention, dtype=np.float32)
        for name, want in (("per_source", (n_l, n_h, t)), ("attention", (n_l, n_h, t, t))):
            if getattr(self, name).shape != want:
                raise AttrWidgetsError(f"{name} must have shape {want}, got {getattr(self, name).shape}.")
        if not 0 <= self.position < t:
            raise AttrWidgetsError(f"position {self.position} is outside the {t} tokens.")

    @property
    def n_layers(self) -> int:
        return self.contributions.shape[0]

    @property
    def n_heads(self) -> int:
        return self.contributions.shape[1]

    def to_dataframe(self):
        """Long format: every head's contribution per layer, and each layer split's stream and bias parts
        (head -1); a layer's rows sum to the logit (core/frames.py)."""
        return frames.dataframe(frames.head_table(self))

    def _bundle(self) -> tuple[dict, dict]:
        header = {"tokens": [t.to_dict() for t in self.tokens], "position": int(self.position),
                  "target_id": int(self.target_id), "target_text": self.target_text, "logit": float(self.logit),
                  "completeness_error": float(self.completeness_error), "options": self.options,
                  "model_id": self.model_id, "prompt": self.prompt, "timestamp": self.timestamp}
        arrays = {"contributions": self.contributions, "per_source": self.per_source, "attention": self.attention,
                  "stream": self.stream, "bias": self.bias}
        return header, arrays

    def to_dict(self) -> dict:
        """Our schema (`schema`, `version`): the saved header and every array as nested lists."""
        return bundle_dict(HEADS_SCHEMA, *self._bundle())

    def save(self, path) -> Path:
        """A JSON header + safetensors beside it (no pickle); aw.load_head_contributions reads it. Returns the JSON
        path. The attention patterns are stored in float16 (they are probabilities: shown, never summed)."""
        header, arrays = self._bundle()
        return save_bundle(path, HEADS_SCHEMA, header, {**arrays, "attention": self.attention.astype(np.float16)})


@file_reader('a saved HeadContributions bundle',
             'Pass the path given to HeadContributions.save(), with both files')
def load_head_contributions(path) -> HeadContributions:
    header, arrays = load_bundle(path, HEADS_SCHEMA)
    where = str(path)
    tokens = tokens_from_header(header, where)
    t = len(tokens)
    contributions = require_array(arrays, where, "contributions", (None, None))
    n_l, n_h = contributions.shape
    return HeadContributions(
        tokens=tokens, position=require(header, where, "position", int),
        target_id=require(header, where, "target_id", int), target_text=require(header, where, "target_text", str),
        contributions=contributions, per_source=require_array(arrays, where, "per_source", (n_l, n_h, t)),
        attention=require_array(arrays, where, "attention", (n_l, n_h, t, t)),
        stream=require_array(arrays, where, "stream", (n_l,)), bias=require_array(arrays, where, "bias", (n_l,)),
        logit=float(require(header, where, "logit", (int, float))),
        completeness_error=float(require(header, where, "completeness_error", (int, float))),
        options=require(header, where, "options", dict), model_id=str(header.get("model_id", "")),
        prompt=str(header.get("prompt", "")), timestamp=str(header.get("timestamp", "")),
    )


def resolve_token_id(tokenizer, token, vocab_size: int) -> int:
    """A token id, or a string that must tokenize to exactly one token."""
    if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
        if not 0 <= int(token) < vocab_size:
            raise AttrWidgetsError(f"token id {token} is outside the vocabulary (0..{vocab_size - 1}).")
        return int(token)
    if not isinstance(token, str):
        raise AttrWidgetsError(f"target token must be a string or an id, got {type(token).__name__}.")
    if tokenizer is None:
        raise AttrWidgetsError("A token string needs the tokenizer: pass a token id instead.")
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if not ids:
        raise AttrWidgetsError(f"target {token!r} tokenizes to nothing: give a token such as ' Paris'.")
    if len(ids) > 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        raise AttrWidgetsError(
            f"target {token!r} is {len(ids)} tokens {pieces} (ids {ids}): give a single token (mind the leading "
            f"space, e.g. ' Paris') or its id, e.g. {ids[0]} for the first piece."
        )
    return ids[0]
