"""`result.to_html(path)`: every result type renders as a standalone page of its view.

The pages are made by the views (widgets/, export_html.py), which sit above the core: the core never imports
them (docs/architecture.md, "Layers"). So the package registers the page writer here when it is imported
(attrwidgets/__init__.py), and a result's to_html() calls whatever was registered. Importing any module of
the package imports the package first, so the writer is always there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrwidgets.errors import AttrWidgetsError

_page_writer: Callable[..., str] | None = None


def register_page_writer(writer: Callable[..., str]) -> None:
    """writer(result, path, *, title, **view) -> the page's HTML (written to path when given)."""
    global _page_writer
    _page_writer = writer


class PageExport:
    """Mixed into every result type: one to_html for all of them."""

    def to_html(self, path=None, *, title: str | None = None, **view: Any) -> str:
        """A standalone HTML page of this result's view (no kernel, no network); written to `path` when given.
        `view` sets the view's initial state (aw.to_html lists what each view takes). Returns the page."""
        if _page_writer is None:
            raise AttrWidgetsError("No page writer is registered: import attrwidgets (the package) before calling "
                                   "to_html().")
        return _page_writer(self, path, title=title, **view)
