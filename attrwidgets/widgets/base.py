"""What every attrwidgets view shares: its bundle, and constructor keywords checked with a hint."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from attrwidgets.core.tokens import SEGMENTS, Token
from attrwidgets.errors import AttrWidgetsError, rename_keywords, renamed_attribute

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

NOT_BUILT_MESSAGE = (
    "attrwidgets: front-end not built: run npm ci && npm run build in the attrwidgets checkout (needs Node.js "
    ">= 18 and npm), then re-run the cell. Installed from a wheel? That wheel lacks the front-end: reinstall "
    "attrwidgets from a wheel built with Node.js and npm on PATH (pip install --force-reinstall --no-deps "
    "<wheel or source>), or from its sdist."
)

# Shown instead of the view when the bundle is missing, so `import attrwidgets` never fails on it.
_FALLBACK_ESM = """
export default {
  render({ el }) {
    const d = document.createElement("div");
    d.className = "aw-not-built";
    d.style.cssText = "padding:6px;border:1px solid #c00;color:#c00;font-family:monospace";
    d.textContent = MESSAGE;
    el.appendChild(d);
  },
};
""".replace("MESSAGE", json.dumps(NOT_BUILT_MESSAGE))


def bundle_path(stem: str) -> Path:
    return STATIC_DIR / f"{stem}.js"


def bundle(stem: str) -> Path | str:
    """The view's built ESM (a Path, so anywidget can hot-reload it) or the inline "not built" fallback."""
    path = bundle_path(stem)
    return path if path.is_file() else _FALLBACK_ESM


def close_match(key: str, allowed: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(key, sorted(set(allowed)), n=1, cutoff=0.75)
    return close[0] if close else None


def unknown_keyword_error(cls: type, key: str, allowed: Iterable[str]) -> TypeError:
    allowed = sorted(set(allowed))
    close = close_match(key, allowed)
    hint = f" Did you mean {close!r}?" if close else ""
    return TypeError(
        f"{cls.__name__}() got an unexpected keyword argument {key!r}.{hint} "
        f"Accepted keywords: {', '.join(allowed)}."
    )


TOKEN_KEYS = ("id", "text", "clean", "segment", "special")


# Keywords the views took under other names (one name, one meaning across views).
RENAMED_VIEW_KEYWORDS = {"selected_source": "selected_position"}


def renamed_view_keywords(cls: type, kwargs: dict, own: dict[str, str] | None = None) -> dict:
    """A view's constructor keywords with the old names replaced (with a DeprecationWarning): every view's, and
    `own`, the view's own renames."""
    return rename_keywords(cls.__name__, kwargs, {**RENAMED_VIEW_KEYWORDS, **(own or {})})


def check_tokens(value: list) -> list[dict]:
    """A view's `tokens` trait: Token objects or dicts with every key of Token.to_dict(), checked."""
    out = []
    for i, t in enumerate(value):
        d = t.to_dict() if isinstance(t, Token) else t
        missing = [k for k in TOKEN_KEYS if k not in d]
        if missing:
            raise traitlets.TraitError(f"token {i} lacks {missing}; each token needs {list(TOKEN_KEYS)}.")
        if d["segment"] not in SEGMENTS:
            raise traitlets.TraitError(f"token {i} has segment {d['segment']!r}; use one of {SEGMENTS}.")
        out.append({"id": int(d["id"]), "text": str(d["text"]), "clean": str(d["clean"]),
                    "segment": str(d["segment"]), "special": bool(d["special"])})
    return out


def split_static_live(view: str, result: Any, kwargs: dict, live_keywords: Iterable[str], result_type: str,
                      example: str, live_example: str) -> dict:
    """Pops the live keywords from `kwargs`: a view shows a result (static) or computes (live), never both, and
    needs one of them. Returns the live keywords."""
    live = {k: kwargs.pop(k) for k in live_keywords if k in kwargs}
    if result is not None and live:
        raise AttrWidgetsError(f"{view} got a result and live arguments {sorted(live)}: pass either {result_type} "
                               "(static) or model=..., prompt=... (live), not both.")
    if result is None and not live:
        raise AttrWidgetsError(f"{view} needs {result_type}, e.g. {view}({example}), or live arguments: "
                               f"{view}({live_example}).")
    return live


PREFETCH_HELP = ("a live view computes what the next click likely needs (the other targets) while the user reads, on "
                 "the worker, silently, cancelled by any click that needs the worker (aw.explore turns it on)")


# What bounds each index of the selection vocabulary, in the views that have it.
SELECTION_SIZES = {"selected_target": "target_positions", "selected_position": "tokens", "selected_layer": "n_layers",
                   "selected_head": "n_heads"}


def with_default(name: str, default: Any) -> traitlets.TraitType:
    """A view's own starting value for one of AttrWidget's shared traits: the same type and help."""
    shared = AttrWidget.class_traits()[name]
    return type(shared)(default, help=shared.help).tag(sync=True)


class AttrWidget(anywidget.AnyWidget):
    """Base class: rejects unknown constructor keywords with a hint (lonboard's BaseWidget does the same),
    so `TokenMatrix(result, normalisation="global")` fails loudly instead of being ignored."""

    @classmethod
    def public_traits(cls) -> list[str]:
        return [name for name in cls.class_trait_names(sync=True) if not name.startswith("_")]

    _live: Any = None  # a live view's worker (widgets/live.py): wait() and close() go through it

    # The selection vocabulary (docs/architecture.md, "Selection"): the same name, type and meaning in every view,
    # so that views link on them; each view derives its own indices from these and may leave some unused.
    selected_position = traitlets.Int(
        -1, help="a position: absolute index into the view's tokens; -1 none. The key linked views share"
    ).tag(sync=True)
    selected_target = traitlets.Int(-1, help="a row: index into the view's target_positions; -1 none").tag(sync=True)
    selected_layer = traitlets.Int(-1, help="a layer index (0 = the first block); -1 none").tag(sync=True)
    selected_head = traitlets.Int(
        -1, help="a head of selected_layer; -1 none (a view that sums over heads says so in a trait of its own)"
    ).tag(sync=True)
    selected_node = traitlets.Unicode("", help="an attribution-graph node id; '' none").tag(sync=True)
    tokens = traitlets.List(traitlets.Dict(), help="(T,) every position the view shows, one structure in every view: "
                            "Token.to_dict() (id, text, clean, segment, special; text UNTRUSTED)").tag(sync=True)
    pinned = traitlets.List(traitlets.Unicode(), help="pinned graph node ids, in pin order").tag(sync=True)

    # What every view shows besides its data.
    busy = traitlets.Bool(False, help="the kernel is computing for this view").tag(sync=True)
    busy_estimate = traitlets.Unicode(
        "", help="while busy with work estimated at a few seconds or more: 'about 40 s' (core/estimate.py)"
    ).tag(sync=True)
    error = traitlets.Unicode("", help="the last error, shown in the view ('' none); the view keeps working").tag(
        sync=True)
    llm_id = traitlets.Unicode("", help="the model's name (ipywidgets already uses model_id)").tag(sync=True)

    @traitlets.validate("tokens")
    def _valid_tokens(self, proposal: dict) -> list[dict]:
        return check_tokens(proposal["value"])

    selected_source = renamed_attribute("selected_source", "selected_position", settable=True)

    def __init__(self, **kwargs: Any) -> None:
        allowed = self.public_traits()
        for key in kwargs:
            if key not in allowed:
                raise unknown_keyword_error(type(self), key, allowed)
        super().__init__(**kwargs)
        self.on_msg(self._answer_ping)

    def _answer_ping(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """The front-end asks whether the kernel still answers (js/lib/liveness.ts): it does, while it lives.
        Answered on the kernel's own thread, between cells: a kernel busy with another cell answers late, and
        the view says so."""
        if isinstance(content, dict) and content.get("type") == "aw:ping":
            self.send({"type": "aw:pong", "id": content.get("id")})

    # check_view: (trait-name prefix, name of a validator that takes a traitlets proposal dict) pairs
    _view_checks: tuple[tuple[str, str], ...] = ()

    def check_view(self, view: dict) -> dict:
        """View-state values checked as the traits check them, without setting them (used by to_html)."""
        out = {}
        for key, value in view.items():
            try:
                trait = self.traits()[key]
                value = trait.validate(self, value)
                check = next((getattr(self, m) for prefix, m in self._view_checks if key.startswith(prefix)),
                             None)
                out[key] = value if check is None else check({"trait": trait, "value": value})
            except traitlets.TraitError as exc:
                raise AttrWidgetsError(str(exc)) from exc
        return out

    @traitlets.validate(*SELECTION_SIZES)
    def _valid_selection(self, proposal: dict) -> int:
        return self.selection_in_range(proposal["trait"].name, proposal["value"])

    def selection_in_range(self, name: str, value: Any) -> int:
        """The shared selection traits: -1 (none) or an index below the size the view shows. A view without that
        size (a TokenMatrix has no layers) keeps the index for the views it links to, checking only -1."""
        value = int(value)
        size = getattr(self, SELECTION_SIZES[name], None)
        n = None if size is None else len(size) if isinstance(size, (list, tuple)) else int(size)
        if value < -1 or (n is not None and value >= n and not (n == 0 and value == 0)):  # 0: a starting value
            bound = "" if n is None else f" or in [0, {n})"
            raise traitlets.TraitError(f"{name} must be -1 (none){bound}, got {value}.")
        return value

    def wait(self, timeout: float | None = None):
        """Block until nothing is computing (tests, scripts); returns the widget, so it displays. A kernel
        interrupt while waiting cancels the computation waited for (what was finished stays) and re-raises."""
        if self._live is not None:
            try:
                self._live.wait(timeout)
            except KeyboardInterrupt:
                self._live.cancel()
                raise
        return self

    def cancel(self):
        """Stop the computation in progress. The view stays usable and keeps every finished row; the next
        selection computes. Returns the widget."""
        if self._live is not None:
            self._live.cancel()
        return self

    def close(self) -> None:
        if self._live is not None:
            self._live.close()
        super().close()
