"""LayerFlow: LIG results (docs/methods/lig.md) as token rows per layer with paths into the selected target.

Front-end: js/layer_flow.ts -> attrwidgets/static/layer_flow.js, same trait names (js/lib/flow_model.ts
LayerFlowModel). Layer rows run bottom-up (the first shown layer at the bottom, as the residual stream
flows). For the selected target j, row l shows every source token i of block l's input as a circle whose area
is its share |IG_ij| / sum_i |IG_ij| and whose colour is the sign. Static use shows one LayerAttribution;
live use keeps a LigSession and computes the selected target's missing columns at every shown layer on a
worker thread (widgets/live_values.py: last request wins, busy, error banner). Columns only accumulate in
the session's result, so nothing computed is lost when a request is superseded or fails.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import traitlets
from traitlets import Bool, Dict, Enum, Float, Int, List, Unicode, observe, validate

from attrwidgets.core.lig.baselines import BASELINES
from attrwidgets.core.lig.result import FLAG_ERROR, LayerAttribution
from attrwidgets.core.tokens import Token
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.widgets.base import (
    AttrWidget,
    bundle,
    renamed_view_keywords,
    unknown_keyword_error,
)
from attrwidgets.widgets.flow_rows import PARTS, VIEW_ROUTES, flow_row, signed_shares
from attrwidgets.widgets.live_values import LiveValues
from attrwidgets.widgets.serialization import Tensor
from attrwidgets.widgets.sources import checked_source, live_source

_LIVE_KEYWORDS = ("source", "model", "prompt", "session", "live")
# `text=` was the live prompt's name here; `prompt=` is every view's.
_RENAMED = {"text": "prompt"}
_SHARED = ("layers", "baseline_layer", "baseline_att", "baseline_mlp")  # view traits and lig options alike
# Traits filled from the result or the session, never from constructor keywords.
_DATA_TRAITS = frozenset({
    "tokens", "n_layers", "n_heads", "values", "shares", "head_values", "completeness_error", "baseline_choices",
    "computed_baselines", "can_compute", "flag_error", "busy", "error", "llm_id",
})


def _lig_options() -> tuple[str, ...]:
    from attrwidgets.core.lig.compute import DEFAULTS

    return tuple(DEFAULTS)


class LayerFlow(AttrWidget):
    """LIG attributions of one text, layer over layer, into the selected target token.

    LayerFlow(result)                                   # a LayerAttribution; live if it still has its session
    LayerFlow(result, model=handle)                     # live: computes what the selection lacks
    LayerFlow(model=handle, prompt="...", n_steps=32)   # live, any aw.lig option (layers=[...], baselines, ...)
    LayerFlow(result, live=False)                       # static even if the result has a session

    Click a token at any layer: it becomes selected_target and that layer selected_layer. `target_positions`
    (default: every position) says which tokens are targets, so selected_target can index the same rows as a
    linked HeadGrid or TokenMatrix; a click on any other token picks selected_position.
    """

    _esm = bundle("layer_flow")

    target_positions = List(Int(), help="(n_targets,) positions that can be targets; selected_target indexes it"
                            ).tag(sync=True)
    n_layers = Int(0, help="the model's block count").tag(sync=True)
    n_heads = Int(0).tag(sync=True)
    layers = List(Int(), help="the layers shown, bottom-up (first at the bottom)").tag(sync=True)
    route = Enum(VIEW_ROUTES, "layer", help="layer z->z, composed ATT x MLP, att z->u, mlp u->z").tag(sync=True)
    baseline_layer = Unicode("self_input_token").tag(sync=True)
    baseline_att = Unicode("self_input_token").tag(sync=True)
    baseline_mlp = Unicode("zero").tag(sync=True)
    baseline_choices = Dict(help="route -> its valid baselines (core/lig/baselines.py)").tag(sync=True)
    computed_baselines = Dict(help="route -> baselines with any computed column").tag(sync=True)
    threshold = Float(0.05, min=0.0, max=1.0, help="paths are drawn for |share| above this").tag(sync=True)
    # (n_shown, T): row r = layers[r], columns sources i; signed attribution to the selected target at that
    # layer; NaN = not computed.
    values = Tensor(ndim=2).tag(sync=True)
    # (n_shown, T): values / sum_i |values| per row: |share| is the circle's area, its sign the colour.
    shares = Tensor(ndim=2).tag(sync=True)
    # (n_shown, H): att each head's total, mlp the per-head slice of u->z, composed each head's term; else None.
    head_values = Tensor(ndim=2).tag(sync=True)
    completeness_error = Tensor(ndim=1, help="(n_shown,) relative completeness error of each shown column").tag(
        sync=True)
    flag_error = Float(FLAG_ERROR, help="columns above this completeness error are flagged").tag(sync=True)
    sum_heads = Bool(True, help="att route: show the sum over heads (True) or selected_head's own column; selecting "
                     "a head turns it off, selected_head = -1 turns it on").tag(sync=True)
    can_compute = Bool(False, help="live: the kernel computes missing columns").tag(sync=True)

    _live: LiveValues | None = None
    _source: Any = None  # an aw.Source shared with other views, when given
    _session: Any = None
    _result: LayerAttribution | None = None

    def __init__(self, result: LayerAttribution | None = None, **kwargs: Any) -> None:
        kwargs = renamed_view_keywords(type(self), kwargs, _RENAMED)
        options = _lig_options()
        live = {k: kwargs.pop(k) for k in (*_LIVE_KEYWORDS, *options) if k in kwargs and k not in _SHARED}
        view = [t for t in self.public_traits() if t not in _DATA_TRAITS]
        for key in kwargs:
            if key not in view:
                raise unknown_keyword_error(type(self), key, [*view, *_LIVE_KEYWORDS, *options])
        if "selected_head" in kwargs:  # a head asked for is a head shown, unless sum_heads says otherwise
            kwargs.setdefault("sum_heads", int(kwargs["selected_head"]) < 0)
        self._lock = threading.RLock()
        self._ready = False
        session, result = self._resolve(result, live, kwargs)
        self._session, self._result = session, result
        defaults = self._defaults(result, kwargs)
        super().__init__(**defaults)
        if session is not None:
            self._live = LiveValues(self, self._on_ready, name="attrwidgets-LayerFlow", source=self._source,
                                    cache_name=("lig", id(session)))
            self._lock = self._live.lock
        self._ready = True
        self._request()

    # -- construction ----------------------------------------------------------------------------------
    def _resolve(self, result: Any, live: dict, view: dict) -> tuple[Any, LayerAttribution]:
        want_live = live.pop("live", None)
        if result is not None and not isinstance(result, LayerAttribution):
            hint = " It looks like a model handle: use LayerFlow(model=handle, prompt='...')." if hasattr(
                result, "tokenizer") else ""
            raise AttrWidgetsError(f"LayerFlow expects a LayerAttribution (aw.lig), got {type(result).__name__}.{hint}")
        session, source = live.pop("session", None), live.pop("source", None)
        model, text = live.pop("model", None), live.pop("prompt", None)
        if result is None and session is None:
            live.update({k: view[k] for k in _SHARED if k in view})  # shown, and the session's defaults
        if source is not None:  # shared with other views: the source's tokens (prompt and generated) are the text
            if session is not None or model is not None or text is not None or want_live is False:
                raise AttrWidgetsError("LayerFlow(source=...) takes no model, prompt or session: the source has them.")
            self._source = checked_source("LayerFlow", source)
            return self._adopt(self._source.session("lig", **live), result)
        if session is None and model is None:
            if result is None:
                raise AttrWidgetsError("LayerFlow needs a LayerAttribution, e.g. LayerFlow(aw.lig(handle, prompt)), "
                                       "or live arguments: LayerFlow(model=handle, prompt='...').")
            if live:
                raise AttrWidgetsError(f"LayerFlow got lig options {sorted(live)} without a model: pass model=... "
                                       "to compute, or leave them out.")
            session = getattr(result, "session", None) if want_live is not False else None
            return session, result
        if want_live is False:
            raise AttrWidgetsError("LayerFlow(live=False) takes no model or session.")
        if session is None:
            same = getattr(getattr(result, "session", None), "handle", None) is model
            if result is not None and same and not live:
                return result.session, result
            from attrwidgets.core.lig.compute import DEFAULTS

            if result is not None:  # how it integrates; which layers, targets and routes the view asks for itself
                keep = set(DEFAULTS) - {"layers", "target_tokens", "target_head", "granularity"}
                live = {**{k: v for k, v in result.options.items() if k in keep}, **live}
                text = result.text if text is None else text
            if text is None:
                raise AttrWidgetsError("Live LayerFlow needs prompt='...' (or a LayerAttribution to continue).")
            self._source = live_source("LayerFlow", {"model": model, "prompt": text, "max_new_tokens": 0})
            session = self._source.session("lig", **live)
        elif live or model is not None or text is not None:
            raise AttrWidgetsError("With session=..., do not pass model, prompt or lig options: the session has them.")
        return self._adopt(session, result)

    @staticmethod
    def _adopt(session: Any, result: LayerAttribution | None) -> tuple[Any, LayerAttribution]:
        """A result to continue lends its computed columns to the session's."""
        if result is not None and result is not session.result:
            session.result.adopt(result)
        return session, session.result

    def _defaults(self, result: LayerAttribution, view: dict) -> dict:
        t = result.length
        layers = result.options.get("layers")
        layers = list(layers) if isinstance(layers, (list, tuple)) and layers else result.layers
        routes = [r for r in VIEW_ROUTES if any(k[0] in PARTS[r] for k in result.columns)]
        if self._session is not None:
            planned = result.options.get("routes") or ("layer", "att", "mlp")
            routes = [r for r in VIEW_ROUTES if all(p in planned for p in PARTS[r])] or list(VIEW_ROUTES)
        out = {
            "tokens": [tok.to_dict() if isinstance(tok, Token) else dict(tok) for tok in result.tokens],
            "target_positions": list(range(t)), "n_layers": result.n_layers, "n_heads": result.n_heads,
            "layers": layers or list(range(result.n_layers)), "route": routes[0] if routes else "layer",
            "baseline_choices": {r: list(BASELINES[r]) for r in BASELINES},
            "can_compute": self._session is not None, "llm_id": result.model_id,
            **{f"baseline_{r}": result.options.get(f"baseline_{r}") or BASELINES[r][0] for r in BASELINES},
        }
        out.update(view)
        targets = out["target_positions"]
        if "selected_target" not in view and targets:
            done = [row for row, p in enumerate(targets) if self._has_any(result, out, p)]
            out["selected_target"] = (done or list(range(len(targets))))[-1]
        return out

    @staticmethod
    def _has_any(result: LayerAttribution, state: dict, position: int) -> bool:
        parts = PARTS[state["route"]]
        return any(k[0] in parts and np.any(np.isfinite(c.expected[position])) for k, c in result.columns.items())

    # -- selection -> what the view needs ----------------------------------------------------------------
    @observe("route", "baseline_layer", "baseline_att", "baseline_mlp", "layers", "selected_target",
             "target_positions")
    def _on_selection(self, change: dict) -> None:
        if self._ready:  # not during construction: __init__ requests once at the end
            self._request()

    @observe("selected_head", "sum_heads")
    def _on_head(self, change: dict) -> None:
        if not self._ready:
            return  # construction sets both as asked
        if change["name"] == "selected_head":
            self.sum_heads = int(change["new"]) < 0  # a head chosen is a head shown; none chosen shows their sum
        with self._lock:
            self._refresh()

    def _baselines(self) -> dict:
        return {"layer": self.baseline_layer, "att": self.baseline_att, "mlp": self.baseline_mlp}

    def _key(self) -> tuple:
        b = self._baselines()
        return self.route, tuple(b[p] for p in PARTS[self.route]), tuple(self.layers), self.target_position

    @property
    def target_position(self) -> int:
        row = int(self.selected_target)
        return self.target_positions[row] if 0 <= row < len(self.target_positions) else -1

    def _missing(self) -> list[int]:
        j, b = self.target_position, self._baselines()
        if j < 0:
            return []
        return [layer for layer in self.layers
                if any((c := self._result.columns.get((p, b[p], layer))) is None or not c.has(j)
                       for p in PARTS[self.route])]

    def _request(self) -> None:
        """Show what is computed now; compute the selected target's missing columns on the worker."""
        with self._lock:
            self.error = ""
            self._refresh()
            missing = self._missing()
            if self._live is None:
                return
            if not missing:
                self._live.forget()  # a superseded request keeps what it finished; nothing else is wanted
                return
            key = self._key()
            self._live.cache.pop(key, None)  # the result, not this cache, says what is computed
            selected = int(self.selected_layer)
            order = sorted(missing, key=lambda layer: layer != selected)  # the clicked row first
            estimate = getattr(self._session, "estimate", None)
            self._live.request(key, lambda cancel: self._compute(key, order, cancel),
                               estimate=None if estimate is None else lambda: estimate([key[0]], order, [key[3]]))

    def _compute(self, key: tuple, layers: list[int], cancel: threading.Event) -> bool:
        """Runs on the worker thread: one layer at a time, redrawn as each arrives."""
        from attrwidgets.core.forward import ComputationCancelled

        route, baselines, _, target = key
        for layer in layers:
            for part, baseline in zip(PARTS[route], baselines, strict=True):
                if cancel.is_set():
                    raise ComputationCancelled("Computation cancelled: a newer request replaced it.")
                cols = self._result.columns.get((part, baseline, layer))
                if cols is None or not cols.has(target):
                    self._session.ensure(part, layer, target, baseline=baseline, cancel=cancel)
            with self._lock:
                if self._live.current == key:
                    self._refresh()
        return True

    def _on_ready(self, key: tuple, value: Any) -> None:
        if key == self._key():
            self._refresh()

    def _refresh(self) -> None:
        """Fill the data traits for the current selection from the result (lock held)."""
        t, nh, n = self._result.length, int(self.n_heads), len(self.layers)
        values = np.full((n, t), np.nan)
        heads = np.full((n, nh), np.nan)
        errors = np.full(n, np.nan)
        j, b = self.target_position, self._baselines()
        head = -1 if self.sum_heads or self.selected_head < 0 else int(self.selected_head)
        if j >= 0:
            for r, layer in enumerate(self.layers):
                try:
                    row = flow_row(self._result, self.route, b, layer, j, head)
                except AttrWidgetsError as exc:
                    self.error, row = str(exc), None
                if row is None:
                    continue
                values[r], errors[r] = row[0], row[2]
                if row[1] is not None:
                    heads[r] = row[1]
        with self.hold_sync():
            self.values = values
            self.shares = signed_shares(values)
            self.head_values = None if self.route == "layer" else heads
            self.completeness_error = errors
            self.computed_baselines = {r: sorted({k[1] for k in self._result.columns if k[0] == r}) for r in BASELINES}

    # -- validation at the boundary ----------------------------------------------------------------------
    @validate("target_positions")
    def _valid_targets(self, proposal: dict) -> list[int]:
        n = len(self.tokens)
        value = [int(p) for p in proposal["value"]]
        bad = [p for p in value if not 0 <= p < n]
        if bad or len(set(value)) != len(value):
            raise traitlets.TraitError(f"target_positions must be distinct positions in [0, {n}), got {value}.")
        return value

    @validate("layers")
    def _valid_layers(self, proposal: dict) -> list[int]:
        value = sorted({int(v) for v in proposal["value"]})
        bad = [v for v in value if not 0 <= v < self.n_layers]
        if bad or not value:
            raise traitlets.TraitError(f"layers must be a non-empty list of layer indices in [0, {self.n_layers}), "
                                       f"got {list(proposal['value'])}.")
        return value

    @validate("baseline_layer", "baseline_att", "baseline_mlp")
    def _valid_baseline(self, proposal: dict) -> str:
        route = proposal["trait"].name.removeprefix("baseline_")
        if proposal["value"] not in BASELINES[route]:
            raise traitlets.TraitError(f"{proposal['trait'].name} must be one of {', '.join(BASELINES[route])}, "
                                       f"got {proposal['value']!r}.")
        return proposal["value"]

    _view_checks = (("selected_", "_valid_selection"), ("baseline_", "_valid_baseline"), ("layers", "_valid_layers"))

    # -- Python API --------------------------------------------------------------------------------------
    @property
    def result(self) -> LayerAttribution:
        """The LayerAttribution shown (the session's, growing, when live)."""
        return self._result

    @property
    def session(self) -> Any:
        """The live LigSession (None for a static view)."""
        return self._session

    def __repr__(self) -> str:
        state = " busy" if self.busy else ""
        return (f"LayerFlow(route={self.route!r}, layers {list(self.layers)}, {len(self.tokens)} tokens, "
                f"selected_target={self.selected_target}, {'live' if self.can_compute else 'static'}{state})")
