"""HeadGrid: every attention head's share of a target logit (DePass, docs/methods/depass.md) as a layers x heads grid.

Front-end: js/head_grid.ts -> attrwidgets/static/head_grid.js, same trait names (js/types.ts HeadGridModel).
Static use shows one HeadContributions; live use keeps a HeadSession and computes the selected target's
contributions on a worker thread (widgets/live_values.py, one cached HeadContributions per row). The
full (T, T) pattern of a head and its per-source contributions cross only when that head is selected.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import traitlets
from traitlets import Bool, Enum, Float, Int, List, Unicode, observe, validate

from attrwidgets.core.depass.result import HeadContributions
from attrwidgets.core.tokens import Token
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.widgets.base import (
    PREFETCH_HELP,
    AttrWidget,
    bundle,
    renamed_view_keywords,
    split_static_live,
    unknown_keyword_error,
    with_default,
)
from attrwidgets.widgets.head_stats import (
    STATISTICS,
    attention_stats,
    check_attention,
    static_rows,
    thumbnails,
)
from attrwidgets.widgets.live import keywords_of
from attrwidgets.widgets.live_values import LiveValues
from attrwidgets.widgets.serialization import Tensor
from attrwidgets.widgets.sources import live_source

MODES = ("depass", "attention")
_LIVE_KEYWORDS = ("source", "model", "prompt", "session", "max_new_tokens", "target", "mlp_rule", "temperature")
# Traits filled from the result or the session, never from constructor keywords.
_DATA_TRAITS = frozenset({
    "tokens", "target_positions", "query_positions", "target_labels", "n_layers", "n_heads", "contributions",
    "attention_stats", "thumbnails", "detail_attention", "detail_contribution", "detail_key", "busy", "error",
    "llm_id", "target_logit", "completeness_error",
})


class HeadGrid(AttrWidget):
    """Each attention head's contribution to the selected target (rows layers, columns heads).

    HeadGrid(attrwidgets.head_contributions(handle, prompt))        # static: one HeadContributions
    HeadGrid(model=handle, prompt="...", max_new_tokens=8)          # live: DePass per selected target
    HeadGrid(model=handle, prompt="...", mode="attention")          # live, attention statistics only
    HeadGrid(session=head_session)                                  # live, reusing a HeadSession

    Click a cell for the head's full pattern and per-source contributions; click a generated token for its
    row; click (or shift-click) any other token to make it the source of `statistic="source_weight"`.
    """

    _esm = bundle("head_grid")

    target_positions = List(Int(), help="(n_targets,) index into tokens of each target").tag(sync=True)
    query_positions = List(Int(), help="(n_targets,) position whose next-token logit explains row i").tag(
        sync=True)
    target_labels = List(Unicode(), help="(n_targets,) text of each explained token").tag(sync=True)
    n_layers = Int(0).tag(sync=True)
    n_heads = Int(0).tag(sync=True)
    # (L, H): rows layers, columns heads; DePass contribution to the selected target's logit; NaN = not computed.
    contributions = Tensor(ndim=2).tag(sync=True)
    # (3, L, H): [entropy (nats), max weight, weight on selected_position] of each head's attention row at the
    # selected target's query position; NaN where undefined (no target, no source).
    attention_stats = Tensor(ndim=3, shape=(3, None, None)).tag(sync=True)
    # (L, H, S, S), S = min(T, 24): each head's pattern (rows queries, columns keys), max-pooled; float16 wire.
    thumbnails = Tensor(ndim=4, wire_dtype="float16").tag(sync=True)
    # On request only (a head selected): (T, T) its pattern, rows queries, columns keys; float16 wire.
    detail_attention = Tensor(ndim=2, wire_dtype="float16").tag(sync=True)
    # On request only: (T,) the head's direct contribution through each source token (per_source[l, h]).
    detail_contribution = Tensor(ndim=1).tag(sync=True)
    detail_key = List(Int(), help="[layer, head, target row] the detail traits belong to; [] none").tag(sync=True)
    selected_target = with_default("selected_target", 0)
    statistic = Enum(STATISTICS, "contribution").tag(sync=True)
    mode = Enum(MODES, "depass", help="attention: no DePass, attention statistics only").tag(sync=True)
    prefetch = Bool(False, help=PREFETCH_HELP).tag(sync=True)
    target_logit = Float(None, allow_none=True, help="the real logit of the target; None = not computed").tag(
        sync=True)
    # (n_targets,) each row's worst relative error of the DePass splits; NaN = not computed (as in every view:
    # completeness_error has one value per row the view shows).
    completeness_error = Tensor(ndim=1).tag(sync=True)

    _live: LiveValues | None = None
    _static: HeadContributions | None = None
    _session: Any = None
    _attention: np.ndarray | None = None

    def __init__(self, result: HeadContributions | None = None, **kwargs: Any) -> None:
        kwargs = renamed_view_keywords(type(self), kwargs)
        live = split_static_live("HeadGrid", result, kwargs, _LIVE_KEYWORDS, "a HeadContributions",
                                 "attrwidgets.head_contributions(handle, prompt)", "model=handle, prompt='...'")
        view = [t for t in self.public_traits() if t not in _DATA_TRAITS]
        accepted = view if result is not None else [*view, *_LIVE_KEYWORDS]
        for key in kwargs:
            if key not in view:
                raise unknown_keyword_error(type(self), key, accepted)
        if kwargs.get("mode") == "attention":
            kwargs.setdefault("statistic", "entropy")
        self._detail_shown: tuple = ()
        self._grid_lock = threading.RLock()  # the live cache's lock once live: one lock, one order
        if result is not None:
            self._start_static(result, kwargs)
        else:
            self._start_live(live, kwargs)
        self._refresh_row()
        self._refresh_stats()

    # -- construction ----------------------------------------------------------------------------------
    def _start_static(self, result: HeadContributions, kwargs: dict) -> None:
        if not isinstance(result, HeadContributions):
            hint = ""
            if hasattr(result, "tokenizer") and hasattr(result, "model"):
                hint = " It looks like a model handle: use HeadGrid(model=handle, prompt='...')."
            raise AttrWidgetsError(f"HeadGrid expects a HeadContributions, got {type(result).__name__}.{hint}")
        attention = check_attention(result.attention, len(result.tokens))
        super().__init__(
            tokens=[t.to_dict() for t in result.tokens], **static_rows(result), n_layers=result.n_layers,
            n_heads=result.n_heads, thumbnails=thumbnails(attention), llm_id=result.model_id, **kwargs,
        )
        self._static, self._attention = result, attention

    def _start_live(self, live: dict, kwargs: dict) -> None:
        session, source = live.pop("session", None), None
        if session is None:
            source = live_source("HeadGrid", live)
            session = source.session("heads", **live)  # mlp_rule=, temperature=, when given
        elif live:
            raise AttrWidgetsError(f"With session=..., do not pass {sorted(live)}: the session has them.")
        tokens = [t.to_dict() if isinstance(t, Token) else dict(t) for t in session.tokens]
        attention = check_attention(session.attention, len(tokens))
        targets = list(session.target_positions)
        n_l, n_h = int(session.n_layers), int(session.n_heads)
        if attention.shape[:2] != (n_l, n_h):
            raise AttrWidgetsError(f"session.attention is {attention.shape}, expected ({n_l}, {n_h}, T, T).")
        if not targets:
            kwargs.setdefault("selected_target", -1)
        super().__init__(
            tokens=tokens, target_positions=targets, query_positions=list(session.query_positions),
            target_labels=[tokens[p]["clean"] or tokens[p]["text"] for p in targets], n_layers=n_l, n_heads=n_h,
            thumbnails=thumbnails(attention), llm_id=str(getattr(session, "model_id", "") or ""), **kwargs,
        )
        self._session, self._attention = session, attention
        accepted = keywords_of(session.contributions)
        self._can_cancel, self._streams = "cancel" in accepted, "on_layer" in accepted
        self._live = LiveValues(self, self._on_ready, name="attrwidgets-HeadGrid", source=source,
                                cache_name=("heads", id(session)))
        self._grid_lock = self._live.lock

    # -- selection -> what the view needs ----------------------------------------------------------------
    @observe("selected_target", "mode")
    def _on_target(self, change: dict) -> None:
        if self._attention is not None:  # not during construction: __init__ refreshes once at the end
            self._refresh_row()
            self._refresh_stats()

    @observe("selected_position")
    def _on_source(self, change: dict) -> None:
        if self._attention is not None:
            self._refresh_stats()

    @observe("selected_layer", "selected_head")
    def _on_head(self, change: dict) -> None:
        if self._attention is not None:
            self._refresh_detail()

    def _refresh_row(self) -> None:
        """Contributions of the selected target: cached or static at once, else computed on the worker."""
        row = int(self.selected_target)
        if self.mode == "attention" or row < 0:
            if self._live is not None:
                self._live.forget()
            self._show(None)
            return
        if self._live is None:
            self._show(self._static)
            return
        with self._live.lock:
            if row not in self._live.cache:
                self._show(None)  # never leave another row's numbers under this row's label
            estimate = getattr(self._session, "estimate", None)
            self._live.request(row, lambda cancel: self._compute(row, cancel),
                               estimate=None if estimate is None else lambda: estimate(row))

    def _compute(self, row: int, cancel: threading.Event) -> HeadContributions:
        """Runs on the worker thread."""
        extra = {"cancel": cancel} if self._can_cancel else {}
        if self._streams:
            extra["on_layer"] = lambda layer, partial: self._show_layers(row, cancel, partial)
        result = self._session.contributions(row, progress=False, **extra)
        shape = np.shape(result.contributions)
        if shape != (self.n_layers, self.n_heads):
            raise AttrWidgetsError(
                f"contributions({row}) returned shape {shape}, expected (L, H) = ({self.n_layers}, {self.n_heads})."
            )
        return result

    def _show_layers(self, row: int, cancel: threading.Event, partial: np.ndarray) -> None:
        """The layers finished so far (worker thread), while this row is still the one selected; the others stay
        NaN ("not computed") until theirs finish."""
        with self._grid_lock:
            if not cancel.is_set() and row == self.selected_target and self.mode == "depass":
                self.contributions = partial

    def _on_ready(self, row: int, result: HeadContributions) -> None:
        if row == self.selected_target and self.mode == "depass":
            self._show(result)
            if self.prefetch:  # while the user reads this row: the other targets, nearest first
                others = sorted((r for r in range(len(self.target_positions)) if r != row), key=lambda r: abs(r - row))
                self._live.prefetch([(r, lambda cancel, r=r: self._compute(r, cancel)) for r in others])

    def _show(self, result: HeadContributions | None) -> None:
        with self._grid_lock, self.hold_sync():
            if result is None:
                self.contributions = np.full((self.n_layers, self.n_heads), np.nan, np.float32)
                self.target_logit = None
            else:
                self.contributions = result.contributions
                self.target_logit = finite_or_none(result.logit)
                if not self.llm_id and result.model_id:
                    self.llm_id = result.model_id
            errors = np.full(len(self.target_positions), np.nan, np.float32)
            for row, done in self.computed_rows().items():
                if 0 <= row < errors.size:
                    errors[row] = done.completeness_error
            self.completeness_error = errors
            self._refresh_detail()

    def _refresh_stats(self) -> None:
        row = int(self.selected_target)
        query = self.query_positions[row] if 0 <= row < len(self.query_positions) else -1
        self.attention_stats = attention_stats(self._attention, query, int(self.selected_position), self.n_layers,
                                               self.n_heads)

    def _refresh_detail(self) -> None:
        """The selected head's full pattern and per-source contributions; nothing when no head is open."""
        with self._grid_lock:
            layer, head, row = int(self.selected_layer), int(self.selected_head), int(self.selected_target)
            open_ = 0 <= layer < self.n_layers and 0 <= head < self.n_heads
            result = self.computed_rows().get(row) if open_ and self.mode == "depass" else None
            key = (layer, head, row, result is not None) if open_ else ()
            if key == self._detail_shown:
                return
            with self.hold_sync():
                if not open_:
                    self.detail_attention = self.detail_contribution = None
                    self.detail_key = []
                else:
                    if self._detail_shown[:2] != (layer, head):  # the (T, T) pattern only when the head changes
                        self.detail_attention = self._attention[layer, head]
                    self.detail_contribution = None if result is None else result.per_source[layer, head]
                    self.detail_key = [layer, head, row]
            self._detail_shown = key

    # -- validation at the boundary ----------------------------------------------------------------------
    @validate("target_positions", "query_positions")
    def _valid_positions(self, proposal: dict) -> list[int]:
        n = len(self.tokens)
        bad = [p for p in proposal["value"] if not 0 <= p < n]
        if bad:
            raise traitlets.TraitError(f"{proposal['trait'].name} {bad} are outside the {n} tokens.")
        return [int(p) for p in proposal["value"]]

    @validate("contributions")
    def _valid_contributions(self, proposal: dict):
        value = proposal["value"]
        if value is not None and value.shape != (self.n_layers, self.n_heads):
            raise traitlets.TraitError(
                f"contributions must be (L, H) = ({self.n_layers}, {self.n_heads}) (rows layers, columns heads), "
                f"got {value.shape}."
            )
        return value

    _view_checks = (("selected_", "_valid_selection"),)

    # -- Python API --------------------------------------------------------------------------------------
    @property
    def session(self) -> Any:
        """The live HeadSession (None for a static widget)."""
        return self._session

    @property
    def result(self) -> HeadContributions | None:
        """The HeadContributions of the selected target (None while it is not computed)."""
        return self.computed_rows().get(int(self.selected_target))

    def computed_rows(self) -> dict[int, HeadContributions]:
        """Every target row computed so far -> its HeadContributions (a copy of the cache)."""
        if self._static is not None:
            return {0: self._static}
        if self._live is None:
            return {}
        with self._live.lock:
            return dict(self._live.cache)

    @property
    def prompt_text(self) -> str:
        if self._static is not None:
            return self._static.prompt
        return str(getattr(self._session, "prompt_text", "") or "")

    @property
    def attention(self) -> np.ndarray | None:
        """(L, H, T, T) every head's pattern, rows queries, columns keys (kept in the kernel, not sent)."""
        return self._attention

    def chart(self):
        """A bqplot Figure linked to this grid: the per-layer sum of contributions to the selected target,
        or, while a head is selected, that head's contribution to every target row computed so far."""
        from attrwidgets.widgets.head_chart import head_chart

        return head_chart(self)

    def __repr__(self) -> str:
        state = " busy" if self.busy else ""
        return (
            f"HeadGrid(mode={self.mode!r}, {self.n_layers}x{self.n_heads} heads, {len(self.tokens)} tokens, "
            f"{len(self.target_positions)} targets, selected_target={self.selected_target}{state})"
        )


def finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
