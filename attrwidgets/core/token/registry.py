"""Method registry: a method is a plain function registered under a name with its options and defaults.

Methods register themselves on import (core/token/methods/, core/token/methods/layer_ig.py); core/token/catalog.py imports
every built-in one, so use get_method and list_methods from there. This module imports no method."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from attrwidgets.errors import AttrWidgetsError


@dataclass
class MethodOutput:
    scores: np.ndarray  # (n_rows, T) rows targets, columns sources (T = truncated length)
    per_dim: np.ndarray | None = None  # (n_rows, T, D)
    completeness_error: np.ndarray | None = None  # (n_rows,)
    signed_scores: np.ndarray | None = None  # (n_rows, T) signed sum over D, kept beside an L2 `scores`
    attention: np.ndarray | None = None  # (n_rows, L, H, T)
    info: dict = field(default_factory=dict)  # JSON-able facts about the run (evaluations used, ...)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    func: Callable
    defaults: dict
    cheap: bool  # all targets at once costs about one target: compute every row eagerly
    summary: str


_METHODS: dict[str, MethodSpec] = {}


def register(name: str, *, defaults: dict, cheap: bool, summary: str):
    def wrap(func):
        _METHODS[name] = MethodSpec(name, func, dict(defaults), cheap, summary)
        return func

    return wrap


def list_methods() -> list[str]:
    """The names registered so far (core/token/catalog.py loads every built-in method first)."""
    return sorted(_METHODS)


def get_method(name: str) -> MethodSpec:
    if name not in _METHODS:
        close = difflib.get_close_matches(str(name), _METHODS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise AttrWidgetsError(f"Unknown method {name!r}.{hint} Available: {', '.join(sorted(_METHODS))}.")
    return _METHODS[name]


def resolve_options(spec: MethodSpec, options: dict) -> dict:
    """Defaults overlaid with the user's options; unknown options are an error naming the valid ones."""
    unknown = sorted(set(options) - set(spec.defaults))
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, spec.defaults, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise AttrWidgetsError(
            f"Unknown option(s) {', '.join(hints)} for method {spec.name!r}. "
            f"Valid options: {', '.join(sorted(spec.defaults)) or 'none'}."
        )
    return {**spec.defaults, **options}
