"""DiffusionTimeline: layer IG at every denoising step of a masked-diffusion LM (DiffusionAttribution, docs/methods/dlig.md
section 2) as a step scrubber over the sequence, the selected unmasked token's attribution over all positions,
and a steps x positions heatmap.

Front-end: js/diffusion_timeline.ts -> attrwidgets/static/diffusion_timeline.js, same trait names
(js/lib/timeline_model.ts TimelineModel). Rows are the unmasked tokens in unmasking order, columns every
position of the sequence as it stood at the row's step (masks included: the model is bidirectional). Every
row is pushed up front (n_rows x T is small), so scrubbing and clicking never wait for the kernel. Live use
recomputes the whole run at another `layer` on a worker thread (widgets/live_values.py: last request wins,
busy, errors in the view, the previous result shown until the new one arrives).

selected_target and selected_step move together: the attribution of a row is over the sequence at ITS step, so
selecting a row moves the scrubber there, and scrubbing to a step selects that step's first row (or -1).
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import traitlets
from traitlets import Bool, Enum, Float, Int, List, Unicode, observe, validate

from attrwidgets.core.dlig.diffusion import RENAMED_OPTIONS
from attrwidgets.core.dlig.result import DiffusionAttribution
from attrwidgets.errors import AttrWidgetsError, rename_keywords
from attrwidgets.widgets.base import (
    AttrWidget,
    bundle,
    renamed_view_keywords,
    unknown_keyword_error,
)
from attrwidgets.widgets.live_values import LiveValues
from attrwidgets.widgets.serialization import Tensor
from attrwidgets.widgets.sources import checked_source

FLAG_ERROR = 0.02  # rows above this relative completeness error are flagged (the LIG/DLIG authors' threshold)
_LIVE_KEYWORDS = ("source", "model", "prompt", "compute")
# aw.dlig's keywords besides layer, progress and cancel (tests check this against its signature): what a static
# view rejects with a hint, and what a live one takes from a result it continues.
DLIG_OPTIONS = ("gen_length", "denoising_steps", "block_length", "remasking", "temperature", "n_steps", "baseline",
                "quadrature", "objective", "per_dim", "mask_token_id", "seed")
# Traits filled from the result, never from constructor keywords.
_DATA_TRAITS = frozenset({
    "tokens", "n_prompt", "n_denoising_steps", "mask_text", "masked", "target_positions", "row_step", "scores",
    "signed_scores", "completeness_error", "shown_layer", "layer_choices", "can_compute", "busy", "error",
    "llm_id",
})
_SELECTION = ("selected_target", "selected_position", "selected_step")


def _norm(layer: Any) -> str:
    if isinstance(layer, int) and not isinstance(layer, bool):
        return f"block {layer}"  # aw.dlig reads an int as that block's output
    return " ".join(str(layer or "").split())


def _accepts(fn: Callable, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def check_result(result: Any) -> DiffusionAttribution:
    """A DiffusionAttribution whose rows point inside its sequence and its steps (else AttrWidgetsError)."""
    if not isinstance(result, DiffusionAttribution):
        hint = " It looks like a model handle: use DiffusionTimeline(model=handle, prompt='...')." if hasattr(
            result, "tokenizer") else ""
        raise AttrWidgetsError(f"DiffusionTimeline expects a DiffusionAttribution (aw.dlig), got "
                               f"{type(result).__name__}.{hint}")
    n = len(result.row_step)
    for name, size in (("row_position", result.length), ("row_step", result.n_denoising_steps)):
        value = np.asarray(getattr(result, name))
        if value.shape != (n,) or (n and not (0 <= value.min() and value.max() < size)):
            raise AttrWidgetsError(f"{name} must hold {n} values in [0, {size}), got {value.tolist()}.")
    if np.shape(result.completeness_error) != (n,):
        raise AttrWidgetsError(f"completeness_error must be (n_rows,) = ({n},), got "
                               f"{np.shape(result.completeness_error)}.")
    return result


class DiffusionTimeline(AttrWidget):
    """Layer IG of each unmasked token at its denoising step, with a scrubber over the steps.

    DiffusionTimeline(result)                                  # static: one DiffusionAttribution (aw.dlig)
    DiffusionTimeline(result, model=handle)                    # live: change `layer` and it recomputes
    DiffusionTimeline(model=handle, prompt="...", layer="block 3", denoising_steps=8, gen_length=16)   # live, any dlig option

    compute= replaces aw.dlig (called as compute(model, prompt, layer=..., **options, cancel=..., progress=False)).
    Continuing a result, the prompt is its text and the options those it was sampled with; pass prompt=<the
    original chat messages> to recompute a chat prompt exactly (its text was rendered with the chat template).
    Click a token unmasked so far to explain it (the scrubber follows its step); click a mask or prompt token
    (shift-click any) to pick selected_position; click a heatmap row to jump to that step or token.
    """

    _esm = bundle("diffusion_timeline")

    n_prompt = Int(0).tag(sync=True)
    n_denoising_steps = Int(0, help="denoising steps (aw.dlig's denoising_steps)").tag(sync=True)
    mask_text = Unicode("[MASK]").tag(sync=True)
    # (n_steps + 1, T): 1 where position p is masked entering step s (row n_steps: after the last step), else 0.
    masked = Tensor(ndim=2).tag(sync=True)
    target_positions = List(Int(), help="(n_rows,) position of each unmasked token, in unmasking order").tag(sync=True)
    row_step = List(Int(), help="(n_rows,) the step that unmasked each row").tag(sync=True)
    # (n_rows, T): rows unmasked tokens, columns source positions of the sequence at the row's step; L2 norm over D
    # of the layer IG. signed_scores: the signed sum over D, same shape.
    scores = Tensor(ndim=2).tag(sync=True)
    signed_scores = Tensor(ndim=2).tag(sync=True)
    completeness_error = Tensor(ndim=1, help="(n_rows,) relative completeness error; NaN = unknown").tag(sync=True)
    flag_error = Float(FLAG_ERROR, help="rows above this completeness error are flagged").tag(sync=True)
    layer = Unicode("", help="the layer to explain at (live: changing it recomputes); '' = aw.dlig's default"
                    ).tag(sync=True)
    shown_layer = Unicode("", help="the layer of the data shown (differs from layer while computing or failed)"
                          ).tag(sync=True)
    layer_choices = List(Unicode(), help="layer names the view suggests").tag(sync=True)
    selected_step = Int(-1, help="the step shown; -1 = the final sequence").tag(sync=True)
    score_kind = Enum(("l2", "signed"), "l2", help="L2 norm over D, or the signed sum").tag(sync=True)
    heatmap = Enum(("steps", "rows"), "steps", help="steps: each step's rows summed; rows: one per token").tag(
        sync=True)
    normalization = Enum(("row", "global"), "row", help="heatmap colour scale per row or over all").tag(sync=True)
    can_compute = Bool(False, help="live: changing layer recomputes").tag(sync=True)

    _live: LiveValues | None = None
    _source: Any = None  # an aw.Source shared with other views, when given
    _result: DiffusionAttribution | None = None

    def __init__(self, result: DiffusionAttribution | None = None, **kwargs: Any) -> None:
        kwargs = renamed_view_keywords(type(self), kwargs, RENAMED_OPTIONS)
        live = {k: kwargs.pop(k) for k in _LIVE_KEYWORDS if k in kwargs}
        compute = live.pop("compute", None)
        accepted = (*DLIG_OPTIONS, *compute_options(compute))
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in accepted}
        view = [t for t in self.public_traits() if t not in _DATA_TRAITS]
        for key in kwargs:
            if key not in view:
                raise unknown_keyword_error(type(self), key, [*view, *_LIVE_KEYWORDS, *accepted])
        self._lock = threading.RLock()
        self._ready = self._coupling = False
        self._echo = None  # the layer label _on_ready writes back (not a request)
        if result is not None:
            check_result(result)
        model, prompt = live.pop("model", None), live.pop("prompt", None)
        if live.get("source") is not None:
            model, prompt = self._from_source(live.pop("source"), model, prompt)
        if model is None:
            if result is None:
                raise AttrWidgetsError("DiffusionTimeline needs a DiffusionAttribution, e.g. DiffusionTimeline("
                                       "aw.dlig(handle, prompt)), or live arguments: DiffusionTimeline(model=handle, "
                                       "prompt='...').")
            if options or prompt is not None or compute is not None:
                raise AttrWidgetsError(f"DiffusionTimeline got {sorted({*options, *live_names(prompt, compute)})} "
                                       "without a model: pass model=... to compute, or leave them out.")
        else:
            options, prompt = self._live_options(result, options, prompt)
        self._model, self._prompt, self._options = model, prompt, options
        self._compute_fn = compute
        layer = kwargs.pop("layer", None)
        self._pending = {k: kwargs.pop(k) for k in _SELECTION if k in kwargs}
        super().__init__(**kwargs, can_compute=model is not None, layer=_norm(layer if layer is not None else (
            result.layer if result is not None else "")))
        if model is not None:
            self._live = LiveValues(self, self._on_ready, name="attrwidgets-DiffusionTimeline", source=self._source,
                                    cache_name=("dlig", json.dumps(self._options, sort_keys=True, default=repr)))
            self._lock = self._live.lock
            self.layer_choices = self._choices(model)
        if result is not None:
            self._show(result)
            if self._live is not None:
                self._live.cache[_norm(result.layer)] = result
        self._ready = self._coupling = True
        if self._live is not None and (result is None or _norm(self.layer) != _norm(result.layer)):
            self._request()
        elif result is not None and _norm(self.layer) != _norm(result.layer):
            self._static_layer()

    # -- construction ----------------------------------------------------------------------------------
    def _from_source(self, source: Any, model: Any, prompt: Any) -> tuple[Any, Any]:
        """An aw.Source shared with other views lends its model, its prompt and its worker thread. The sampler
        makes the continuation it explains, so the source must have generated none."""
        if model is not None or prompt is not None:
            raise AttrWidgetsError("DiffusionTimeline(source=...) takes no model or prompt: the source has them.")
        self._source = source = checked_source("DiffusionTimeline", source)
        if len(source.tokens) > source.n_prompt:
            raise AttrWidgetsError("DiffusionTimeline samples its own continuation: make its aw.Source with "
                                   "max_new_tokens=0.")
        return source.handle, source.prompt

    def _live_options(self, result, options: dict, prompt) -> tuple[dict, Any]:
        """A result to continue lends its prompt and the options it was sampled with (mask id included)."""
        if result is None:
            if prompt is None:
                raise AttrWidgetsError("Live DiffusionTimeline needs prompt='...' (or a DiffusionAttribution to "
                                       "continue).")
            return options, prompt
        base = {k: v for k, v in rename_keywords(None, result.options, RENAMED_OPTIONS).items() if k in DLIG_OPTIONS}
        base["mask_token_id"] = int(result.mask_token_id)
        if base.get("baseline") == "tensor" and "baseline" not in options:
            raise AttrWidgetsError("This result was computed with a tensor baseline, which it does not keep: pass "
                                   "baseline=<the tensor> again to recompute it at another layer.")
        return {**base, **options}, result.prompt if prompt is None else prompt

    @staticmethod
    def _choices(model) -> list[str]:
        try:
            from attrwidgets.core.dlig.layers import role_names

            return role_names(model)
        except Exception:  # noqa: BLE001 - suggestions only; a fake or remote model may not have an adapter
            return []

    # -- live: layer -> recompute ----------------------------------------------------------------------------
    @observe("layer")
    def _on_layer(self, change: dict) -> None:
        if not self._ready or change["new"] == self._echo:
            return
        if self._live is None:
            self._static_layer()
        else:
            self._request()

    def _static_layer(self) -> None:
        if _norm(self.layer) == _norm(self.shown_layer):
            self.error = ""
        else:
            self.error = (f"This view is static: it shows layer {self.shown_layer!r} and cannot compute layer "
                          f"{self.layer!r}. Pass model=... to recompute, e.g. DiffusionTimeline(result, model=handle).")

    def _request(self) -> None:
        key = _norm(self.layer)
        self._live.request(key, lambda cancel: self._compute(key, cancel), estimate=lambda: self._estimate(key))

    def _estimate(self, key: str):
        if self._compute_fn is not None:
            return None  # a user's compute function: nothing to estimate it from
        from attrwidgets.core.estimate import estimate

        return estimate("dlig", self._model, self._prompt, layer=key or None, **self._options)

    def _compute(self, key: str, cancel: threading.Event) -> DiffusionAttribution:
        """Runs on the worker thread."""
        fn = self._compute_fn
        if fn is None:
            from attrwidgets.core.dlig.diffusion import dlig as fn
        extra = {name: value for name, value in (("cancel", cancel), ("progress", False)) if _accepts(fn, name)}
        result = fn(self._model, self._prompt, layer=key or None, **self._options, **extra)
        return check_result(result)

    def _on_ready(self, key: str, result: DiffusionAttribution) -> None:
        label = _norm(result.layer) or key
        self._live.cache.setdefault(label, result)  # "" or a module path resolves to a role: cache it under both
        try:
            self._show(result)
        except (traitlets.TraitError, AttrWidgetsError) as exc:  # e.g. a constructor selection out of range
            self.error = str(exc)
        if label != _norm(self.layer):
            self._echo = label  # the trait names what was computed; nothing to request
            try:
                self.layer = label
            finally:
                self._echo = None

    # -- data ------------------------------------------------------------------------------------------------
    def _show(self, result: DiffusionAttribution) -> None:
        """Replace the data traits; keep the selection when the rows are the same, else start at step 0."""
        with self._lock:
            old = self._result
            same = old is not None and np.array_equal(old.row_step, result.row_step) and np.array_equal(
                old.row_position, result.row_position) and old.length == result.length
            wanted = dict(self._pending) if old is None else {
                k: getattr(self, k) for k in _SELECTION} if same else {}
            self._pending = {}
            self._coupling = False
            try:
                with self.hold_sync():
                    self.selected_target = self.selected_position = self.selected_step = -1
                    self.tokens = [tok.to_dict() for tok in result.tokens]
                    self.n_prompt, self.n_denoising_steps = int(result.n_prompt), result.n_denoising_steps
                    self.mask_text = result.mask_text
                    self.masked = (result.states == result.mask_token_id).astype(np.float32)
                    self.target_positions = [int(p) for p in result.row_position]
                    self.row_step = [int(s) for s in result.row_step]
                    self.scores, self.signed_scores = result.scores, result.signed_scores
                    self.completeness_error = np.asarray(result.completeness_error, np.float32)
                    self.shown_layer, self.llm_id = result.layer, result.model_id or self.llm_id
                    if self._live is None:
                        self.layer_choices = [result.layer] if result.layer else []
                    self._result = result
                    self._select(wanted)
            finally:
                self._coupling = True

    def _select(self, wanted: dict) -> None:
        """The wanted selection, made consistent: a row brings its step, a step its first row."""
        target = int(wanted.get("selected_target", -1))
        first = 0 if self.n_denoising_steps and "selected_target" not in wanted else -1
        step = int(wanted.get("selected_step", first))
        self.selected_position = int(wanted.get("selected_position", -1))
        self.selected_step = step  # validated, also when a target below overrides it
        if target >= 0:
            self.selected_target = target
            self.selected_step = self.row_step[target]
        elif "selected_target" not in wanted and step >= 0:
            self.selected_target = self.first_row(step)

    def first_row(self, step: int) -> int:
        """The first row unmasked at `step`, -1 when it unmasked none."""
        return next((r for r, s in enumerate(self.row_step) if s == step), -1)

    @observe("selected_target")
    def _target_moved(self, change: dict) -> None:
        row = int(change["new"])
        if self._coupling and row >= 0 and self.row_step[row] != self.selected_step:
            self.selected_step = self.row_step[row]

    @observe("selected_step")
    def _step_moved(self, change: dict) -> None:
        step, row = int(change["new"]), int(self.selected_target)
        if not self._coupling or (row >= 0 and self.row_step[row] == step):
            return
        self.selected_target = self.first_row(step) if step >= 0 else -1

    # -- validation at the boundary ----------------------------------------------------------------------
    _view_checks = (("selected_", "_valid_selection"),)

    @validate("layer")
    def _valid_layer(self, proposal: dict) -> str:
        return _norm(proposal["value"])

    @validate(*_SELECTION)
    def _valid_selection(self, proposal: dict) -> int:
        name, value = proposal["trait"].name, int(proposal["value"])
        n = {"selected_target": len(self.target_positions), "selected_position": len(self.tokens),
             "selected_step": self.n_denoising_steps}[name]
        if not -1 <= value < n:
            none = "the final sequence" if name == "selected_step" else "none"
            raise traitlets.TraitError(f"{name} must be -1 ({none}) or in [0, {n}), got {value}.")
        return value

    # -- Python API --------------------------------------------------------------------------------------
    @property
    def result(self) -> DiffusionAttribution | None:
        """The DiffusionAttribution shown (None while a live view computes its first)."""
        return self._result

    @property
    def target_position(self) -> int:
        row = int(self.selected_target)
        return self.target_positions[row] if 0 <= row < len(self.target_positions) else -1

    def __repr__(self) -> str:
        state = " busy" if self.busy else ""
        return (f"DiffusionTimeline(layer={self.shown_layer or self.layer!r}, {self.n_denoising_steps} steps, "
                f"{len(self.target_positions)} unmasked tokens, selected_step={self.selected_step}, "
                f"selected_target={self.selected_target}, {'live' if self.can_compute else 'static'}{state})")


def compute_options(compute: Callable | None) -> tuple[str, ...]:
    """The keyword options a custom compute= names (beyond DLIG_OPTIONS), so they are not rejected."""
    if compute is None:
        return ()
    try:
        params = inspect.signature(compute).parameters.values()
    except (TypeError, ValueError):
        return ()
    skip = {"model", "prompt", "layer", "cancel", "progress"}
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in skip)


def live_names(prompt, compute) -> list[str]:
    return [name for name, value in (("prompt", prompt), ("compute", compute)) if value is not None]
