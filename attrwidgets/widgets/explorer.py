"""aw.explore(model, prompt): the token matrix, head grid, attribution graph and layer flow as one linked panel
(docs/linking.md).

One aw.Source (generation once, one session per kind and its cache, one worker thread) feeds every view; the
views are linked through absolute positions (widgets/linking.py), and the Explorer itself is linked with them,
so `ex.selected_target = 2` from Python moves every view. The Explorer is one anywidget whose bundle holds
every view (js/explorer.ts): it draws each part from that part's own widget model, through anywidget's host
composition (anywidget >= 0.11), in a 2x2 grid when wide and as tabs when narrow. Hovering brushes every part in
the front-end alone. `ex.to_html(path)` (PageExport, the registered page writer: core/rendering.py) writes the
linked explorer as one standalone page (export_explorer.py).
"""

from __future__ import annotations

from typing import Any

from traitlets import Dict, Enum, Int, List

from attrwidgets.core.rendering import PageExport
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.widgets.base import AttrWidget, bundle
from attrwidgets.widgets.linking import link

VIEWS = ("tokens", "heads", "graph", "flow")
KNOWN = (*VIEWS, "timeline")
# "inline": where the call is displayed; the others open a JupyterLab panel through sidecar, at that anchor.
SHOW = ("inline", "right", "split-right", "tab-after")


def _causal(handle: Any) -> bool:
    return bool(handle.adapter.causal) and handle.adapter.lm_head(handle.model) is not None


def check_views(views: Any, handle: Any) -> tuple[str, ...]:
    """The view names asked for, each one the model can do (else a clear error naming those it can)."""
    names = (views,) if isinstance(views, str) else tuple(views)
    unknown = [v for v in names if v not in KNOWN]
    if unknown or not names:
        raise AttrWidgetsError(f"Unknown view(s) {unknown or '(none given)'}: aw.explore shows "
                               f"{', '.join(KNOWN)}.")
    if len(set(names)) < len(names):
        raise AttrWidgetsError(f"views lists a view twice: {list(names)}.")
    causal = _causal(handle)
    can = [v for v in KNOWN if (v in ("tokens", "heads", "graph")) == causal or v == "flow"]
    if not causal and getattr(handle.tokenizer, "mask_token_id", None) is None:
        can.remove("timeline")
    cannot = [v for v in names if v not in can]
    if cannot:
        why = ("they explain generated tokens and need a causal LM with an LM head" if not causal else
               "the timeline samples a masked-diffusion LM")
        raise AttrWidgetsError(f"{handle.model_id!r} cannot show {cannot}: {why}. It can show {can}.")
    return names


class Explorer(PageExport, AttrWidget):
    """Every view of one prompt, linked. `ex.views["tokens"]` etc. are the parts; the selection traits
    (selected_target, selected_position, selected_layer, selected_head, selected_node) are every view's.
    `ex.to_html(path)`: the linked explorer as one standalone page."""

    _esm = bundle("explorer")

    parts = Dict(help="view name -> 'anywidget:<model id>' of its widget, in the order shown").tag(sync=True)
    target_positions = List(Int(), help="(n_targets,) the generated tokens' positions").tag(sync=True)
    _panel: Any = None  # the sidecar panel it was opened in, if any
    layout_mode = Enum(("auto", "grid", "tabs"), "auto",
                       help="'auto' (a grid when wide, tabs when narrow), 'grid' or 'tabs'").tag(sync=True)

    def __init__(self, source: Any, views: dict[str, AttrWidget]) -> None:
        super().__init__(tokens=[t.to_dict() for t in source.tokens], target_positions=list(source.target_positions),
                         parts={name: f"anywidget:{view.model_id}" for name, view in views.items()},
                         llm_id=source.model_id)
        self.source, self._views = source, dict(views)
        # The first view's selection (the matrix's first row) becomes every view's, the Explorer's included.
        self._link = link(*views.values(), self)  # check_views gave at least one view
        self._cell_hooks = _hold_ahead_while_cells_run(source)

    @property
    def views(self) -> dict[str, AttrWidget]:
        return dict(self._views)

    def __repr__(self) -> str:
        return (f"Explorer({self.llm_id!r}, {len(self.tokens)} tokens, views {list(self._views)}, "
                f"selected_target={self.selected_target})")

    def open_panel(self, anchor: str = "right") -> None:
        """Show the Explorer in a JupyterLab panel (sidecar): "right" (the right sidebar, where it shows one view
        at a time), "split-right" or "tab-after" (beside the notebook, as wide as a grid)."""
        from IPython.display import display
        from sidecar import Sidecar

        self._panel = Sidecar(title="attrwidgets explorer", anchor=anchor)
        with self._panel:
            display(self)

    def wait(self, timeout: float | None = None):
        for view in self._views.values():
            view.wait(timeout)
        return self

    def close(self) -> None:
        self._cell_hooks()
        self._link.unlink()
        for view in self._views.values():
            view.close()
        if self._panel is not None:
            self._panel.close()
        super().close()


def _hold_ahead_while_cells_run(source: Any):
    """In IPython, the explorer's work done ahead holds still while any cell runs (the quickstart's next cells
    measured 2x slower beside it). Returns what unregisters the hooks; outside IPython, nothing to do."""
    try:
        from IPython import get_ipython
    except ImportError:
        return lambda: None
    shell = get_ipython()
    if shell is None:
        return lambda: None

    def before(*_: Any) -> None:
        source.hold_ahead(True)

    def after(*_: Any) -> None:
        source.hold_ahead(False)

    shell.events.register("pre_run_cell", before)
    shell.events.register("post_run_cell", after)

    def unregister() -> None:
        for event, hook in (("pre_run_cell", before), ("post_run_cell", after)):
            try:
                shell.events.unregister(event, hook)
            except ValueError:  # already gone
                pass
        source.hold_ahead(False)

    return unregister


def explore(model, prompt, *, views=VIEWS, method: str = "integrated_gradients", transcoder=None,
            max_new_tokens: int = 8, target: str | None = None, show: str = "inline") -> Explorer:
    """The linked explorer of `prompt` on `model` (a handle or a name): docs/linking.md says what a click in one
    view does in the others. method: the token matrix's method. transcoder: the graph's (None: the component
    graph). show: "inline" (the cell's output), or a JupyterLab panel through sidecar: "right" (the right
    sidebar), "split-right" or "tab-after" (beside the notebook)."""
    from attrwidgets.core.source import Source
    from attrwidgets.models import as_handle

    if show not in SHOW:
        raise AttrWidgetsError(f"show={show!r}: aw.explore shows {', '.join(map(repr, SHOW))} (a JupyterLab side "
                               "panel for all but 'inline').")
    handle = as_handle(model)
    names = check_views(views, handle)
    generate = max_new_tokens if _causal(handle) else 0
    source = Source(handle, prompt, max_new_tokens=generate, target=target)
    made: dict[str, AttrWidget] = {}
    try:
        for name in names:
            made[name] = _view(name, source, method, transcoder)
    except Exception:
        for view in made.values():
            view.close()
        raise
    ex = Explorer(source, made)
    if show != "inline":
        ex.open_panel(show)
    return ex


def _view(name: str, source: Any, method: str, transcoder: Any) -> AttrWidget:
    if name == "tokens":
        from attrwidgets.widgets.token_matrix import TokenMatrix

        return TokenMatrix(source=source, method=method, prefetch=True)
    if name == "heads":
        from attrwidgets.widgets.head_grid import HeadGrid

        return HeadGrid(source=source, prefetch=True)
    if name == "graph":
        from attrwidgets.widgets.graph_view import GraphView

        # the source's graph (on the model's components, or on the transcoder's features), its target rows and its
        # worker: a target selected in another view rebuilds the graph for that target's prefix
        return GraphView(source=source, transcoder=transcoder)
    if name == "flow":
        from attrwidgets.widgets.layer_flow import LayerFlow

        return LayerFlow(source=source)
    from attrwidgets.widgets.diffusion_timeline import DiffusionTimeline

    return DiffusionTimeline(source=source)
