"""aw.to_html(ex, path) (or ex.to_html(path)): the linked Explorer as one standalone page (docs/linking.md).

Every part's page state is the one its own export writes (export_html.view_page: its traits, tensors as base64,
and the data its standalone() answers from), with the part's current selection; the page holds them all in one
"aw-parts" block, inlines the Explorer's bundle (which holds every view) and loads it with
html_page.EXPLORER_LOADER: an in-page model per part, and a stand-in for anywidget's host.getModel. In the page
the parts are linked as widgets/linking.py links them (js/lib/page_link.ts) and hovering brushes as in the
notebook; a selection a part holds no data for says so ("not computed in this export"). No kernel, no network.

export_html.to_html hands this module its view_page (one view's page) rather than this module importing it, so
the two never import each other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from attrwidgets.errors import AttrWidgetsError
from attrwidgets.widgets.html_page import EXPLORER_LOADER, WIDGET_TRAITS, require_bundle, write_page
from attrwidgets.widgets.linking import LINKED

VIEW_STATE = ("layout_mode",)  # what aw.to_html(ex, ...) may set; each part keeps its own state


def explorer_to_html(explorer: Any, path: str | Path | None = None, *, title: str | None = None,
                     view_page: Callable[[Any, dict], Any], **view: Any) -> str:
    """The page of `explorer` (an Explorer): every part as it is now. view: layout_mode ("auto", "grid",
    "tabs"). Writes it to `path` when given; returns it."""
    unknown = sorted(set(view) - set(VIEW_STATE))
    if unknown:
        raise AttrWidgetsError(f"to_html got unknown option(s) {unknown}; for an Explorer it accepts "
                               f"{list(VIEW_STATE)} (each part exports as it is shown).")
    require_bundle("explorer")
    state = explorer.check_view({k: getattr(explorer, k) for k in VIEW_STATE} | view)
    names = [t for t in type(explorer).public_traits() if t not in WIDGET_TRAITS]
    state = {**explorer.get_state(names), **state, "busy": False, "error": ""}
    parts, lines = {}, []
    for name, part in explorer.views.items():
        page = view_page(part, {})
        # The part's selection as linking left it (a graph's position and layer follow its node, the page's
        # static graph knows only the node).
        selection = {k: int(getattr(part, k)) for k in LINKED}
        parts[name] = {"state": {**page.state, **selection}, "extra": page.extra}
        lines.append(f"{name}: {page.meta.splitlines()[0]}")
    meta = (f"model: {explorer.llm_id or 'unknown'}   views: {', '.join(parts)}\n" + "\n".join(lines) +
            f"\ntext: {''.join(t['clean'] for t in explorer.tokens)}")
    return write_page("explorer", state, None, title or "attrwidgets: explorer", meta, path,
                      blocks={"aw-parts": parts}, loader=EXPLORER_LOADER)
