"""to_html(): a standalone page showing the same TokenMatrix view, without a kernel and without a network.

The built bundle (attrwidgets/static/token_matrix.js) is inlined and loaded from a blob: URL; tensors are
embedded as base64 float32 made by the widgets' one serializer; a small in-page model object stands in for
anywidget's (get/set/on/off/save_changes), so the view's own render() runs unchanged and clicks still change
the selected target locally. All data sits in <script type="application/json"> blocks with "<" escaped, so
no token text can close the block or start markup.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from attrwidgets.core.result import Attribution
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.widgets.base import NOT_BUILT_MESSAGE, bundle_path
from attrwidgets.widgets.serialization import serialize_tensor

VIEW_STATE = ("selected_target", "normalization", "sign_mode", "hide_special")

_LOADER = """
const read = (id) => JSON.parse(document.getElementById(id).textContent);
const state = read("aw-state");
for (const [key, value] of Object.entries(state)) {
  if (value && typeof value === "object" && typeof value.base64 === "string") {
    const raw = atob(value.base64);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    state[key] = { buffer: new DataView(bytes.buffer), dtype: value.dtype, shape: value.shape };
  }
}
const listeners = new Map();
const model = {
  get: (key) => state[key],
  set: (key, value) => {
    if (state[key] === value) return;
    state[key] = value;
    for (const fn of [...(listeners.get("change:" + key) || [])]) fn();
  },
  save_changes: () => {},
  on: (event, fn) => {
    if (!listeners.has(event)) listeners.set(event, new Set());
    listeners.get(event).add(fn);
  },
  off: (event, fn) => {
    if (!event) listeners.clear();
    else if (!fn) listeners.delete(event);
    else listeners.get(event)?.delete(fn);
  },
};
const el = document.getElementById("aw-view");
try {
  const url = URL.createObjectURL(new Blob([read("aw-bundle")], { type: "text/javascript" }));
  const view = (await import(url)).default;
  el.textContent = "";
  view.render({ model, el });
  window.attrwidgetsModel = model;  // for tests and the curious: model.set("selected_target", 2)
} catch (e) {
  el.textContent = "attrwidgets: could not start the view: " + e;
}
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="attrwidgets">
<title>{title}</title>
<style>
  body {{ margin: 16px; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }}
  @media (prefers-color-scheme: dark) {{ body {{ background: #1e1e1e; color: #e0e0e0; }} }}
  .aw-meta {{ font-size: 13px; opacity: 0.8; margin-bottom: 8px; white-space: pre-wrap; }}
</style>
</head>
<body>
<h1 style="font-size: 18px">{title}</h1>
<div class="aw-meta">{meta}</div>
<div id="aw-view" class="aw-standalone-host">loading&hellip;<noscript>This page needs JavaScript to draw the
attribution view.</noscript></div>
<script type="application/json" id="aw-state">{state}</script>
<script type="application/json" id="aw-bundle">{bundle}</script>
<script type="module">{loader}</script>
</body>
</html>
"""


def script_json(value: Any) -> str:
    """JSON safe inside <script type="application/json">: "<", ">" and "&" as \\u escapes, so neither
    "</script" nor "<!--" can appear whatever the strings hold; JSON.parse reads them back unchanged."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _tensor(value: Any) -> dict | None:
    wire = serialize_tensor(value)
    if wire is None:
        return None
    return {"base64": base64.b64encode(wire["buffer"]).decode("ascii"), "dtype": wire["dtype"],
            "shape": wire["shape"]}


def page_state(result: Attribution, view: dict | None = None) -> dict:
    """The TokenMatrix traits for `result`, tensors as base64 (js/types.ts Model)."""
    if not isinstance(result, Attribution):
        raise AttrWidgetsError(
            f"to_html expects an Attribution or a TokenMatrix, got {type(result).__name__}."
        )
    state = {
        "tokens": [t.to_dict() for t in result.tokens],
        "target_positions": [int(p) for p in result.target_positions],
        "scores": _tensor(result.scores),
        "target_prob": _tensor(result.target_prob),
        "target_entropy": _tensor(result.target_entropy),
        "completeness_error": _tensor(result.completeness_error),
        "selected_target": 0,
        "method": result.method,
        "methods": [result.method],
        "n_steps": int(result.options.get("n_steps", 0) or 0),
        "normalization": "row",
        "sign_mode": "signed",
        "hide_special": False,
        "busy": False,
        "error": "",
        "llm_id": result.model_id,
    }
    state.update(view or {})
    return state


def to_html(result: Any, path: str | Path | None = None, *, title: str | None = None, **view: Any) -> str:
    """A standalone HTML page of the TokenMatrix view of `result` (an Attribution or a TokenMatrix).

    view: initial selected_target, normalization ("row"|"global"), sign_mode ("signed"|"absolute"),
    hide_special; a TokenMatrix passes its own. Writes the page to `path` when given; returns it.
    """
    unknown = sorted(set(view) - set(VIEW_STATE))
    if unknown:
        raise AttrWidgetsError(f"to_html got unknown option(s) {unknown}; it accepts {list(VIEW_STATE)}.")
    if hasattr(result, "result") and hasattr(result, "selected_target"):  # a TokenMatrix widget
        view = {**{k: getattr(result, k) for k in VIEW_STATE}, **view}
        result = result.result
    bundle = bundle_path("token_matrix")
    if not bundle.is_file():
        raise AttrWidgetsError(f"Cannot export HTML: {NOT_BUILT_MESSAGE} ({bundle} is missing).")
    state = page_state(result, view)
    n = len(state["target_positions"])
    if n and not 0 <= int(state["selected_target"]) < n:
        raise AttrWidgetsError(f"selected_target must be in [0, {n}), got {state['selected_target']}.")
    title = title or f"attrwidgets: {result.method} attribution"
    meta = (
        f"model: {result.model_id or 'unknown'}   method: {result.method}   {result.timestamp}\n"
        f"prompt: {result.prompt}"
    )
    page = _PAGE.format(
        title=html.escape(title),
        meta=html.escape(meta),
        state=script_json(state),
        bundle=script_json(bundle.read_text(encoding="utf-8")),
        loader=_LOADER,
    )
    if path is not None:
        Path(path).write_text(page, encoding="utf-8")
    return page
