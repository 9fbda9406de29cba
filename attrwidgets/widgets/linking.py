"""aw.link(*views): separate views in separate cells answer each other, kernel-side (docs/linking.md).

Views link on AttrWidget's selection vocabulary, translated through absolute positions, never through row
numbers that mean different things in different views:
- selected_position moves to the same position in every view (-1 where a view does not show it);
- selected_target, a row of one view's target_positions, becomes the row of the same target position in the
  others (-1 where that position is not one of their targets); a GraphView built on the source has the source's
  rows (its graph is rebuilt for that target's prefix), a graph alone has none and keeps its own;
- selected_layer and selected_head are the same indices everywhere (-1 where out of a view's range); the
  GraphView lights up that head's nodes;
- selected_node is a graph's; the GraphView itself turns it into a position, a layer and a head, which then
  link as above.
"""

from __future__ import annotations

import threading

import traitlets

from attrwidgets.errors import AttrWidgetsError
from attrwidgets.widgets.base import AttrWidget

LINKED = ("selected_position", "selected_target", "selected_layer", "selected_head")


class Link:
    """Views whose selections follow each other until unlink()."""

    def __init__(self, views: tuple[AttrWidget, ...]) -> None:
        self.views = views
        self._busy = threading.local()  # the propagation under way, so an echo never loops back
        for view in views:
            view.observe(self._moved, names=list(LINKED))
        for name in LINKED:  # as ipywidgets.link does: the first view's selection becomes every view's
            self._moved({"owner": views[0], "name": name, "new": getattr(views[0], name)})

    def __repr__(self) -> str:
        return f"Link({', '.join(type(v).__name__ for v in self.views)})"

    def unlink(self) -> None:
        for view in self.views:
            view.unobserve(self._moved, names=list(LINKED))

    def _moved(self, change: dict) -> None:
        if getattr(self._busy, "on", False):
            return
        source, name, value = change["owner"], change["name"], int(change["new"])
        position = _position(source, name, value)
        self._busy.on = True
        try:
            for view in self.views:
                if view is not source:
                    _set(view, name, _translate(view, name, value, position))
        finally:
            self._busy.on = False


def _position(view: AttrWidget, name: str, value: int) -> int:
    """The absolute position a target row stands for (-1: none)."""
    if name != "selected_target":
        return -1
    targets = getattr(view, "target_positions", None) or []
    return targets[value] if 0 <= value < len(targets) else -1


def _translate(view: AttrWidget, name: str, value: int, position: int) -> int:
    if name != "selected_target":
        return value
    targets = list(getattr(view, "target_positions", None) or [])
    return targets.index(position) if position in targets else -1


def _set(view: AttrWidget, name: str, value: int) -> None:
    if name == "selected_target" and not getattr(view, "target_positions", None):
        return  # a view without target rows (a graph alone, not built on the source) keeps its own
    try:
        setattr(view, name, value)
    except traitlets.TraitError:
        setattr(view, name, -1)  # outside what this view shows: nothing selected here


def link(*views: AttrWidget) -> Link:
    """Link the selections of `views` (two or more attrwidgets views, in any cells). Returns a Link; call
    .unlink() to stop. Selections translate through absolute positions (docs/linking.md)."""
    if len(views) < 2:
        raise AttrWidgetsError(f"aw.link needs two or more views, got {len(views)}.")
    for view in views:
        if not isinstance(view, AttrWidget):
            raise AttrWidgetsError(f"aw.link links attrwidgets views (TokenMatrix, HeadGrid, LayerFlow, GraphView, "
                                   f"DiffusionTimeline), got {type(view).__name__}.")
    if len({id(v) for v in views}) < len(views):
        raise AttrWidgetsError("aw.link got the same view twice: pass each view once.")
    ids = [[t["id"] for t in v.tokens] for v in views]
    for view, mine in zip(views[1:], ids[1:]):
        common = min(len(mine), len(ids[0]))
        if mine[:common] != ids[0][:common]:  # a graph shows the prompt alone: a prefix is the same sequence
            raise AttrWidgetsError(f"aw.link: {type(views[0]).__name__} and {type(view).__name__} show different "
                                   "token sequences, so their positions mean different tokens. Link views of one "
                                   "prompt: build them from one aw.Source(model, prompt).")
    return Link(tuple(views))
