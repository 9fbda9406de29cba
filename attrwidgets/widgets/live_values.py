"""LiveValues: a keyed cache on a live view's last-request-wins worker (widgets/live.py), for views whose
selection needs one value per key (HeadGrid's rows, LayerFlow's columns, a graph per target), and the work
done ahead of the next click (prefetch)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from attrwidgets.core.source import computation
from attrwidgets.widgets.live import LiveWorker, describe_error, shared_parts

log = logging.getLogger("attrwidgets.widgets.live")


@dataclass
class _Pending:
    key: Any
    cancel: threading.Event = field(default_factory=threading.Event)
    ahead: bool = False  # a prefetch: silent, and not wanted by the selection (yet)
    future: Any = None


class LiveValues(LiveWorker):
    """A keyed cache and a last-request-wins worker: a live view says what its selection needs (a cache key
    and a compute function) and gets the worker thread, the cache, the busy flag and the error banner.

    The widget provides traits `busy` and `error`. `request(key, compute)` makes `key` the current one and
    calls `on_ready(key, value)` with the cached value at once, or later from the worker once
    `compute(cancel)` returns, and then only if `key` is still the current one: a stale result is cached for
    its own key but never shown over a newer one. A job superseded before it starts is skipped; a running one
    has its `cancel` event set (compute functions that honour it raise, and nothing is reported). A failure
    of the current request goes to `widget.error`; the cache keeps everything computed before.
    """

    def __init__(self, widget: Any, on_ready: Callable[[Any, Any], None], name: str = "", source: Any = None,
                 cache_name: Any = None, busy_name: str = "values",
                 on_ahead: Callable[[Any, Any], None] | None = None) -> None:
        """source: an aw.Source whose lock, worker thread and cache `cache_name` this view shares with the other
        views of that source (core/source.py); None: its own. busy_name: this worker's part of the view's busy
        flag, where the view has several (`_busy_parts`). on_ahead(key, value): a value computed ahead is
        cached (a view that shows several keys at once can add it)."""
        self.widget, self.busy_name = widget, busy_name
        self.on_ready, self.on_ahead = on_ready, on_ahead
        self.inflight: list[_Pending] = []
        self.current: Any = None
        self.source = source
        self.lock, self.cache, self.worker = shared_parts(self, source, cache_name, name)

    def request(self, key: Any, compute: Callable[[threading.Event], Any],
                estimate: Callable[[], Any] | None = None) -> None:
        """`estimate()` (optional) returns the computation's Estimate; the busy state shows it."""
        with self.lock:
            if self.source is not None:
                self.source.clicked()  # work done ahead holds still while this selection is answered
            request_id = self.worker.new_request()
            self.current = key
            ahead = next((j for j in self.inflight if j.key == key and j.ahead and not j.cancel.is_set()), None)
            for job in self.inflight:
                if job.key != key:
                    job.cancel.set()
            self.widget.error = ""
            if key in self.cache:
                self.on_ready(key, self.cache[key])
                return
            if ahead is not None:  # computing it ahead already: it is now what the view waits for
                self.promote(ahead)
                return
            if any(j.key == key and not j.cancel.is_set() for j in self.inflight):
                return  # a running or queued job computes it and will show it
            job = _Pending(key)
            self.inflight.append(job)
            self.submit_needed(request_id, job, lambda rid: self._run(rid, job, compute, estimate))

    def prefetch(self, work: list[tuple[Any, Callable[[threading.Event], Any]]]) -> None:
        """(key, compute) pairs the next click will likely need, in order: computed on the worker after what is
        queued, without the busy flag or errors, cached when done, shown only if a selection comes to want them.
        Any request of any view of the source cancels them (Source.cancel_prefetches); close() too."""
        with self.lock:
            busy = {j.key for j in self.inflight if not j.cancel.is_set()}
            for key, compute in work:
                if key in self.cache or key in busy:
                    continue
                job = _Pending(key, ahead=True, cancel=self.ahead_event())
                self.inflight.append(job)
                if not self.submit_ahead(job, lambda rid, j=job, c=compute: self._run(rid, j, c)):
                    return

    def forget(self) -> None:
        """Nothing is wanted now (e.g. the selection was cleared): running jobs are cancelled."""
        with self.lock:
            self.worker.new_request()
            self.current = None
            for job in self.inflight:
                job.cancel.set()

    def _wanted(self, request_id: int, job: _Pending) -> bool:
        return not job.cancel.is_set() and (job.ahead or self.worker.is_latest(request_id) or job.key == self.current)

    def _run(self, request_id: int, job: _Pending, compute: Callable[[threading.Event], Any],
             estimate: Callable[[], Any] | None = None) -> None:
        """Runs on the worker thread."""
        try:
            with self.lock:
                if not self._wanted(request_id, job):
                    return
                if job.key in self.cache:  # an uncancellable stale run filled it meanwhile
                    value = self.cache[job.key]
                    computed = False
                else:
                    computed = True
            if computed:
                if not job.ahead:
                    self.show_estimate(estimate)
                with computation(job.cancel):
                    value = compute(job.cancel)
                with self.lock:
                    self.cache[job.key] = value  # cached even if stale: it is right for its key
        except Exception as exc:  # any failure goes to the error banner
            log.debug("live compute for %r failed", job.key, exc_info=True)
            with self.lock:
                if self._wanted(request_id, job) and not job.ahead:  # work done ahead fails silently
                    self.widget.error = describe_error(exc)
            return
        finally:
            self.finished(job)
        with self.lock:
            if job.key == self.current:
                self.on_ready(job.key, value)
            elif job.ahead and self.on_ahead is not None:
                self.on_ahead(job.key, value)

