"""graph_to_html(): a standalone page of a GraphView (no kernel, no network), through the page every export writes (widgets/html_page.py).

The page holds the pruned graph at the view's thresholds, its pins and selection; hover, click (paths), the
detail panel, pan and zoom work as in the notebook. Re-pruning and other targets need the kernel, so the page
disables those controls (`static_page` in its state) and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import traitlets

from attrwidgets.errors import AttrWidgetsError
from attrwidgets.widgets.html_page import WIDGET_TRAITS, require_bundle, write_page

VIEW_STATE = ("node_threshold", "edge_threshold", "selected_node", "pinned", "pinned_only", "group")


def graph_to_html(graph_or_view: Any, path: str | Path | None = None, *, title: str | None = None, **view: Any) -> str:
    """A standalone HTML page of a Graph or a GraphView (its thresholds, pins and selection unless `view` says
    otherwise: VIEW_STATE). Writes it to `path` when given; returns it."""
    state, meta = graph_page(graph_or_view, view)
    return write_page("graph_view", state, None, title or "attrwidgets: attribution graph", meta, path)


def graph_page(graph_or_view: Any, view: dict) -> tuple[dict, str]:
    """The GraphView traits of the page (the pruned graph, never rebuilt) and its description line."""
    from attrwidgets.widgets.graph_view import GraphView

    unknown = sorted(set(view) - set(VIEW_STATE))
    if unknown:
        raise AttrWidgetsError(f"graph_to_html got unknown option(s) {unknown}; it accepts {list(VIEW_STATE)}.")
    require_bundle("graph_view")
    own = not isinstance(graph_or_view, GraphView)
    if not own:
        view = {**{k: getattr(graph_or_view, k) for k in VIEW_STATE}, **view}
        graph = graph_or_view.graph
    else:
        graph = graph_or_view
    try:
        page_view = GraphView(graph, **view).wait()  # the shown graph, pruned here; never rebuilds
    except traitlets.TraitError as exc:
        raise AttrWidgetsError(str(exc)) from exc
    try:
        names = [t for t in GraphView.public_traits() if t not in WIDGET_TRAITS]
        state = {**page_view.get_state(names), "busy": False, "error": "", "can_rebuild": False,
                 "target": "", "shown_target": "", "static_page": True}
        if not own:  # a live view's tokens carry the tokenizer's pieces; a Graph keeps their text alone
            state["tokens"] = list(graph_or_view.tokens)
        s = page_view.summary
        meta = (f"model: {s.get('model') or 'unknown'}   {s.get('shown_nodes')} of {s.get('n_nodes')} nodes, "
                f"{s.get('shown_edges')} of {s.get('n_edges')} edges   node_threshold {page_view.node_threshold}   "
                f"edge_threshold {page_view.edge_threshold}\nprompt: {s.get('prompt', '')}")
    finally:
        page_view.close()
    return state, meta
