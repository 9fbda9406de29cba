"""The standalone page every view's HTML export writes (export_html.py, widgets/graph_html.py).

The view's built bundle (attrwidgets/static/<view>.js) is inlined and loaded from a blob: URL; tensors are
embedded as base64; a small in-page model object stands in for anywidget's (get/set/on/off/save_changes), so
the view's own render() runs unchanged. All data sits in <script type="application/json"> blocks with "<"
escaped, so no token text can close the block or start markup.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from attrwidgets.core.files import write_text_atomic
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.widgets.base import NOT_BUILT_MESSAGE, bundle_path

WIDGET_TRAITS = ("layout", "tabbable", "tooltip")  # ipywidgets' own, not part of a view's model

# What every page's loader starts with: reading the JSON blocks, tensors back into what ipywidgets delivers, and
# the in-page model standing in for anywidget's.
_PAGE_MODEL = """
const read = (id) => JSON.parse(document.getElementById(id).textContent);
// {base64, dtype, shape} anywhere in the data -> the {buffer: DataView, dtype, shape} that ipywidgets delivers.
const decode = (value) => {
  if (Array.isArray(value)) return value.map(decode);
  if (!value || typeof value !== "object") return value;
  if (typeof value.base64 === "string") {
    const raw = atob(value.base64);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return { buffer: new DataView(bytes.buffer), dtype: value.dtype, shape: value.shape };
  }
  for (const key of Object.keys(value)) value[key] = decode(value[key]);
  return value;
};
const makeModel = (state) => {
  const listeners = new Map();
  return {
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
};
const el = document.getElementById("aw-view");
const loadBundle = async () => {
  const url = URL.createObjectURL(new Blob([read("aw-bundle")], { type: "text/javascript" }));
  const module = await import(url);
  el.textContent = "";
  return module;
};
"""

_LOADER = _PAGE_MODEL + """
const model = makeModel(decode(read("aw-state")));
try {
  const module = await loadBundle();
  if (document.getElementById("aw-extra") && typeof module.standalone === "function") {
    module.standalone(model, decode(read("aw-extra")));  // answers what the kernel would
  }
  module.default.render({ model, el });
  window.attrwidgetsModel = model;  // for tests and the curious: model.set("selected_target", 2)
} catch (e) {
  el.textContent = "attrwidgets: could not start the view: " + e;
}
"""

# The Explorer's page (export_explorer.py): one in-page model per part, the bundle's standalone() links them and
# stands in for anywidget's host (host.getModel), then the Explorer renders every part from them.
EXPLORER_LOADER = _PAGE_MODEL + """
const model = makeModel(decode(read("aw-state")));
try {
  const module = await loadBundle();
  const parts = {}, extras = {};
  for (const [name, part] of Object.entries(decode(read("aw-parts")))) {
    parts[name] = makeModel(part.state);
    extras[name] = part.extra;
  }
  const host = module.standalone(model, parts, extras);
  await module.default.render({ model, el, host });
  window.attrwidgetsModel = model;  // for tests and the curious: model.set("selected_target", 2)
  window.attrwidgetsParts = parts;  // each part's model, by view name
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
{extra}<script type="module">{loader}</script>
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


def base64_buffers(value: Any) -> Any:
    """Serialized tensors ({buffer, dtype, shape}) anywhere in `value` -> {base64, dtype, shape}."""
    if isinstance(value, dict):
        if isinstance(value.get("buffer"), (memoryview, bytes, bytearray)):
            return {"base64": base64.b64encode(value["buffer"]).decode("ascii"), "dtype": value["dtype"],
                    "shape": list(value["shape"])}
        return {k: base64_buffers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [base64_buffers(v) for v in value]
    return value


def require_bundle(stem: str) -> Path:
    """The view's built bundle, or a clear error when the front-end is not built."""
    bundle = bundle_path(stem)
    if not bundle.is_file():
        raise AttrWidgetsError(f"Cannot export HTML: {NOT_BUILT_MESSAGE} ({bundle} is missing).")
    return bundle


def write_page(stem: str, state: dict, extra: dict | None, title: str, meta: str,
               path: str | Path | None, *, blocks: dict[str, Any] | None = None, loader: str = _LOADER) -> str:
    """The page of bundle `stem` showing `state`; `extra` is the data its standalone() answers from. `blocks`:
    more JSON blocks by element id, read by `loader` (EXPLORER_LOADER reads "aw-parts")."""
    bundle = require_bundle(stem)
    more = {**({} if extra is None else {"aw-extra": extra}), **(blocks or {})}
    extra_blocks = "".join(f'<script type="application/json" id="{html.escape(block_id)}">'
                           f"{script_json(base64_buffers(value))}</script>\n" for block_id, value in more.items())
    page = _PAGE.format(
        title=html.escape(title),
        meta=html.escape(meta),
        state=script_json(base64_buffers(state)),
        bundle=script_json(bundle.read_text(encoding="utf-8")),
        extra=extra_blocks,
        loader=loader,
    )
    if path is not None:
        write_text_atomic(path, page)
    return page
