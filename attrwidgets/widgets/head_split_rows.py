"""A live TokenMatrix's head view: when a head is selected (selected_layer and selected_head, e.g. clicked in a
linked HeadGrid), the matrix shows what that head carries to each target from each source token
(core/depass/head_split.py; docs/linking.md). The selected target's row is computed first, on the Source's
worker; the cache is the Source's, so a head seen once is shown at once.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from attrwidgets.widgets.live_values import LiveValues


class HeadSplitRows:
    """Fills `widget.head_split` (n_targets, T) and `head_split_contribution` (n_targets,) for the head in
    `head_split_of`; NaN = a row not computed yet."""

    def __init__(self, widget: Any, source: Any) -> None:
        self.widget, self.source = widget, source
        self.values = LiveValues(widget, self._on_ready, name="attrwidgets-HeadSplit", source=source,
                                 cache_name="head_split", busy_name="head_split", on_ahead=self._on_ahead)

    def request(self) -> None:
        """What the selection needs: the selected head's split for the selected target (-1 in either: none)."""
        w = self.widget
        layer, head, row = int(w.selected_layer), int(w.selected_head), int(w.selected_target)
        if layer < 0 or head < 0:
            self.values.forget()
            if w.head_split_of:
                w.head_split_of = []
            return
        self._show(layer, head)
        if row < 0:
            return
        session = self.source.session("heads")
        self.values.request((layer, head, row), lambda cancel: self._compute(session, layer, head, row, cancel))

    @staticmethod
    def _compute(session: Any, layer: int, head: int, row: int, cancel: threading.Event):
        return session.head_split(row, layer, head, cancel=cancel)

    def _on_ready(self, key: tuple[int, int, int], split: Any) -> None:
        layer, head, row = key
        self._show(layer, head)
        if self.widget.prefetch:  # while the user reads: this head's split for the other targets, nearest first
            session = self.source.session("heads")
            others = sorted((r for r in range(len(self.widget.target_positions)) if r != row),
                            key=lambda r: abs(r - row))
            self.values.prefetch([((layer, head, r), lambda cancel, r=r: self._compute(session, layer, head, r, cancel))
                                  for r in others])

    def _on_ahead(self, key: tuple[int, int, int], split: Any) -> None:
        """Another row of the head shown, computed ahead: it fills in (lock held)."""
        if self.widget.head_split_of == [key[0], key[1]]:
            self._show(key[0], key[1])

    def _show(self, layer: int, head: int) -> None:
        """Every cached row of this head, NaN elsewhere (lock held or on the kernel thread)."""
        w = self.widget
        n_targets, n_positions = len(w.target_positions), len(w.tokens)
        scores = np.full((n_targets, n_positions), np.nan, np.float32)
        contribution = np.full(n_targets, np.nan, np.float32)
        with self.values.lock:
            for (l, h, row), split in self.values.cache.items():
                if (l, h) == (layer, head):
                    scores[row], contribution[row] = split.scores, split.contribution
        with w.hold_sync():
            w.head_split, w.head_split_contribution = scores, contribution
            w.head_split_of = [layer, head]

    def wait(self, timeout: float | None = None) -> None:
        self.values.wait(timeout)

    def close(self) -> None:
        self.values.close()
