"""TokenMatrix: token attribution during generation (docs/methods/token.md) as a two-way bound view.

Front-end: js/token_matrix.ts -> attrwidgets/static/token_matrix.js. Trait names are identical there
(js/types.ts). Static use shows one Attribution; live use keeps an AttributionSession and recomputes what a
selection needs (all rows of a cheap method, only the selected row of integrated gradients).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import traitlets
from traitlets import Bool, Enum, Float, Int, List, Unicode, observe, validate

from attrwidgets.core.depass.result import Decomposition
from attrwidgets.core.token.result import Attribution
from attrwidgets.core.tokens import Token
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.widgets.base import (
    PREFETCH_HELP,
    AttrWidget,
    bundle,
    close_match,
    split_static_live,
    unknown_keyword_error,
    with_default,
)
from attrwidgets.widgets.head_split_rows import HeadSplitRows
from attrwidgets.widgets.live import LiveRows, keywords_of, method_defaults
from attrwidgets.widgets.serialization import Tensor
from attrwidgets.widgets.sources import live_source

# The contract's methods, used when neither the session nor the package can list them.
DEFAULT_METHODS = ["attention", "input_x_gradient", "integrated_gradients", "layer_integrated_gradients", "saliency"]
DEFAULT_N_STEPS = 32
# A live view's integrated gradients refine until the row adds up to within the view's tolerance (the error it
# warns above), from a first answer at a few steps, within a step budget: docs/methods/token.md, "In a live view".
VIEW_TOLERANCE = 0.05
LIVE_REFINEMENT = {"tol": VIEW_TOLERANCE, "first_steps": 8}
LIVE_STEP_BUDGET = 512
_LIVE_KEYWORDS = ("source", "model", "prompt", "session", "max_new_tokens", "target", "contrast")
_LIVE_STATE = ("method", "methods", "n_steps")  # traits a live widget may be given
# Traits filled from the result or the session, never from constructor keywords.
_DATA_TRAITS = frozenset({
    "tokens", "target_positions", "scores", "target_prob", "target_entropy", "completeness_error",
    "method", "methods", "n_steps", "busy", "error", "llm_id", "head_split", "head_split_contribution", "head_split_of",
    "refining",
})


def _available_methods(session: Any) -> list[str]:
    names = getattr(session, "methods", None)
    if names is None:
        try:
            from attrwidgets.core.token.catalog import list_methods

            names = list_methods()
        except (ImportError, AttributeError):
            names = DEFAULT_METHODS
    return sorted(names)


def _default_steps(methods: list[str]) -> int:
    for m in methods:
        steps = (method_defaults(m) or {}).get("n_steps")
        if steps is not None:
            return int(steps)
    return DEFAULT_N_STEPS


def _known_options(methods: list[str]) -> set[str] | None:
    """Every option some method accepts (registry defaults); None if the registry lacks one of them."""
    known: set[str] = set()
    for m in methods:
        defaults = method_defaults(m)
        if defaults is None:
            return None
        known |= set(defaults)
    return known


def _check_options(options: dict, methods: list[str]) -> None:
    """Method options must be accepted by some method; fail at construction, with a hint."""
    known = _known_options(methods)
    if known is None:
        return  # a method the registry does not know (custom session): compute() judges
    for key in options:
        if key not in known:
            close = close_match(key, known)
            hint = f" Did you mean {close!r}?" if close else ""
            raise AttrWidgetsError(
                f"Unknown method option {key!r}.{hint} Options of {', '.join(methods)}: {', '.join(sorted(known))}."
            )


class TokenMatrix(AttrWidget):
    """Attribution of each generated token (rows) to every earlier token (columns).

    TokenMatrix(result)                                     # static: an Attribution (or a token-level Decomposition)
    TokenMatrix(model=handle, prompt="...", method="integrated_gradients", n_steps=32, baseline=...)
                                                            # live: recomputes on selection
    TokenMatrix(session=session, method="saliency")          # live, reusing an AttributionSession

    In live mode, keywords that are neither traits nor session arguments are method options: each goes to
    ``session.compute`` of every method whose registry defaults name it (`baseline` to integrated
    gradients only, `objective` to all gradient methods); `n_steps` is a trait, sent to methods that take it.
    """

    _esm = bundle("token_matrix")

    target_positions = List(Int(), help="(n_targets,) index into tokens of each target").tag(sync=True)
    # (n_targets, n_positions): rows are targets, columns are sources; NaN = not computed (yet).
    scores = Tensor(ndim=2).tag(sync=True)
    target_prob = Tensor(ndim=1).tag(sync=True)  # (n_targets,) p(y_i | prefix)
    target_entropy = Tensor(ndim=1).tag(sync=True)  # (n_targets,) entropy of the next-token distribution
    completeness_error = Tensor(ndim=1).tag(sync=True)  # (n_targets,) IG only, NaN = row not computed
    selected_target = with_default("selected_target", 0)  # the running text explains this row
    completeness_tolerance = Float(VIEW_TOLERANCE, help="the completeness error the view warns above").tag(sync=True)
    refining = List(List(Int()), help="[row, gradient evaluations] of rows shown as an intermediate answer that is "
                    "still being refined; [] none").tag(sync=True)
    method = Unicode("").tag(sync=True)
    methods = List(Unicode()).tag(sync=True)
    n_steps = Int(DEFAULT_N_STEPS, help="integrated-gradients quadrature steps").tag(sync=True)
    normalization = Enum(("row", "global"), "row").tag(sync=True)
    sign_mode = Enum(("signed", "absolute"), "signed").tag(sync=True)
    hide_special = Bool(False).tag(sync=True)
    prefetch = Bool(False, help=PREFETCH_HELP).tag(sync=True)
    # The head view (widgets/head_split_rows.py): with a head selected, what it carries to each target from each
    # source token, shown instead of `scores`; a live view on an aw.Source computes it.
    head_split_of = List(Int(), help="[layer, head] that head_split shows; [] none").tag(sync=True)
    head_split = Tensor(ndim=2).tag(sync=True)  # (n_targets, n_positions); NaN = not computed (yet)
    head_split_contribution = Tensor(ndim=1).tag(sync=True)  # (n_targets,) the head's whole contribution per row
    # Not "model_id": ipywidgets already uses that name for the widget's comm id.

    _live: LiveRows | None = None
    _static: Attribution | None = None
    _head_split: HeadSplitRows | None = None

    def __init__(self, result: Attribution | None = None, **kwargs: Any) -> None:
        if isinstance(result, Decomposition):  # DePass's token view (core/depass/token_view.py)
            result = result.as_attribution()
        live = split_static_live("TokenMatrix", result, kwargs, _LIVE_KEYWORDS, "an Attribution",
                                 "attrwidgets.attribute(handle, prompt, method='saliency')",
                                 "model=handle, prompt='...', method='saliency'")
        view = [t for t in self.public_traits() if t not in _DATA_TRAITS]
        if result is not None:
            for key in kwargs:
                if key not in view:
                    raise unknown_keyword_error(type(self), key, view)
            super().__init__(**self._static_traits(result), **kwargs)
            self._static = result
            return
        accepted = [*view, *_LIVE_STATE, *_LIVE_KEYWORDS]
        options = {k: kwargs.pop(k) for k in list(kwargs) if k not in accepted}
        known = _known_options(kwargs.get("methods") or DEFAULT_METHODS)
        for key in options:
            # A near-miss of a keyword ("normalisation", "n_step") is a typo, not a method option.
            if key in _DATA_TRAITS or (key not in (known or ()) and close_match(key, accepted)):
                raise unknown_keyword_error(type(self), key, accepted)
        self._start_live(live, options, kwargs)

    # -- static ----------------------------------------------------------------------------------
    def _static_traits(self, result: Attribution) -> dict:
        if not isinstance(result, Attribution):
            hint = ""
            if hasattr(result, "tokenizer") and hasattr(result, "model"):
                hint = " It looks like a model handle: use TokenMatrix(model=handle, prompt='...')."
            raise AttrWidgetsError(
                f"TokenMatrix expects an attrwidgets Attribution, got {type(result).__name__}.{hint}"
            )
        n_t, n_p = result.n_targets, result.n_positions
        if np.shape(result.scores) != (n_t, n_p):
            raise AttrWidgetsError(
                f"Attribution.scores has shape {np.shape(result.scores)} but there are {n_t} targets and "
                f"{n_p} tokens: scores must be (n_targets, n_positions), rows targets, columns sources."
            )
        return {
            "tokens": [t.to_dict() for t in result.tokens],
            "target_positions": list(result.target_positions),
            "scores": result.scores,
            "target_prob": result.target_prob,
            "target_entropy": result.target_entropy,
            "completeness_error": result.completeness_error,
            "method": result.method,
            "methods": [result.method],
            "n_steps": int(result.options.get("n_steps", DEFAULT_N_STEPS)),
            "llm_id": result.model_id,
        }

    # -- live ------------------------------------------------------------------------------------
    def _start_live(self, live: dict, options: dict, kwargs: dict) -> None:
        session, source = live.pop("session", None), None
        if session is None:
            source = live_source("TokenMatrix", live)
            session = source.session("token", **live)  # contrast=, when given
        elif live:
            raise AttrWidgetsError(f"With session=..., do not pass {sorted(live)}: the session has them.")
        handle = getattr(session, "handle", None)
        methods = list(kwargs.pop("methods", None) or _available_methods(session))
        method = kwargs.pop("method", None) or ("saliency" if "saliency" in methods else methods[0])
        _check_options(options, methods)
        # A session that hands over intermediate answers (AttributionSession.compute's on_partial) refines.
        refines = "on_partial" in keywords_of(getattr(session, "compute", None)) and "integrated_gradients" in methods
        if refines:  # what a user passed wins; options_for() gives each method only the options it takes
            options = {**LIVE_REFINEMENT, **options}
        kwargs.setdefault("n_steps", LIVE_STEP_BUDGET if refines else _default_steps(methods))
        tokens = [t.to_dict() if isinstance(t, Token) else dict(t) for t in session.tokens]
        super().__init__(
            tokens=tokens,
            target_positions=list(session.target_positions),
            scores=np.full((len(session.target_positions), len(tokens)), np.nan, np.float32),
            target_prob=getattr(session, "target_prob", None),
            target_entropy=getattr(session, "target_entropy", None),
            methods=methods,
            method=method,
            llm_id=str(getattr(handle, "model_id", "") or getattr(session, "model_id", "")),
            **kwargs,
        )
        self._busy_parts: dict[str, bool] = {}
        self._live = LiveRows(self, session, options, source=source)
        if source is not None:
            self._head_split = HeadSplitRows(self, source)
        self._live.request()

    @observe("selected_target", "method", "n_steps")
    def _on_selection(self, change: dict) -> None:
        if self._static is not None:
            self._keep_static(change)
        elif self._live is not None:
            self._live.request()

    @observe("selected_layer", "selected_head", "selected_target")
    def _on_head(self, change: dict) -> None:
        if self._head_split is not None:
            self._head_split.request()

    def wait(self, timeout: float | None = None):
        super().wait(timeout)
        if self._head_split is not None:
            self._head_split.wait(timeout)
        return self

    def close(self) -> None:
        if self._head_split is not None:
            self._head_split.close()
        super().close()

    def _keep_static(self, change: dict) -> None:
        name = change["name"]
        fixed = {"method": self._static.method, "n_steps": self._static.options.get("n_steps", DEFAULT_N_STEPS)}
        if name in fixed and change["new"] != fixed[name]:
            self.error = (
                f"This TokenMatrix shows a computed result ({self._static.method}); to change {name}, use "
                "live mode: TokenMatrix(model=handle, prompt=..., method=...)."
            )
            setattr(self, name, fixed[name])

    # -- validation at the boundary ----------------------------------------------------------------
    @validate("target_positions")
    def _valid_targets(self, proposal: dict) -> list[int]:
        n = len(self.tokens)
        bad = [p for p in proposal["value"] if not 0 <= p < n]
        if bad:
            raise traitlets.TraitError(f"target_positions {bad} are outside the {n} tokens.")
        return list(proposal["value"])

    @validate("scores")
    def _valid_scores(self, proposal: dict):
        value = proposal["value"]
        want = (len(self.target_positions), len(self.tokens))
        if value is not None and value.shape != want:
            raise traitlets.TraitError(
                f"scores must be (n_targets, n_positions) = {want} (rows targets, columns sources), "
                f"got {value.shape}."
            )
        return value

    @validate("target_prob", "target_entropy", "completeness_error")
    def _valid_per_target(self, proposal: dict):
        value = proposal["value"]
        n = len(self.target_positions)
        if value is not None and value.shape != (n,):
            raise traitlets.TraitError(
                f"{proposal['trait'].name} needs one value per target ({n},), got {value.shape}."
            )
        return value

    @validate("n_steps")
    def _valid_steps(self, proposal: dict) -> int:
        if int(proposal["value"]) < 1:
            raise traitlets.TraitError(f"n_steps must be at least 1, got {proposal['value']}.")
        return int(proposal["value"])

    # -- Python API --------------------------------------------------------------------------------
    @property
    def session(self) -> Any:
        """The live AttributionSession (None for a static widget)."""
        return self._live.session if self._live is not None else None

    @property
    def result(self) -> Attribution:
        """The Attribution shown: for a live widget, every row computed so far for this method/options."""
        if self._static is not None:
            return self._static
        merged = self._live.result()
        if merged is not None:
            return merged
        return Attribution(
            tokens=[Token.from_dict(t) for t in self.tokens], target_positions=list(self.target_positions),
            scores=np.full((len(self.target_positions), len(self.tokens)), np.nan, np.float32),
            method=self.method, options=self._live.options_for(self.method), model_id=self.llm_id,
            target_prob=self.target_prob, target_entropy=self.target_entropy,
        )

    def __repr__(self) -> str:
        state = " busy" if self.busy else ""
        return (
            f"TokenMatrix(method={self.method!r}, {len(self.tokens)} tokens, {len(self.target_positions)} "
            f"targets, selected_target={self.selected_target}{state})"
        )
