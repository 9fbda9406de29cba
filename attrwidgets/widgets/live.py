"""Live recomputation for the widgets: a last-request-wins worker, and two caches on it: LiveRows (rows of
an Attribution per (method, options), TokenMatrix) and LiveValues (any key -> value, e.g. HeadGrid's rows;
widgets/live_values.py).

The kernel's comm thread must stay free while a method runs (integrated gradients on a real model takes
seconds per row), so computation runs on one worker thread. Every selection makes a new request id. A job
whose request is no longer the latest and whose rows the current selection does not need is skipped (or
cancelled, when the session supports `cancel=`); a finished result always goes into the cache of its own
(method, options), which only ever gains rows, and the view shows the cache of the *current* selection, so a
stale result can never overwrite a newer one. Nothing cached is lost when a computation fails.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from attrwidgets.core.source import computation
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.widgets.latest_wins import LatestWins

log = logging.getLogger(__name__)

ROW_ARRAYS = ("scores", "completeness_error", "per_dim", "attention", "signed_scores")  # Attribution arrays, rows = targets
Key = tuple[str, str]


def cache_key(method: str, options: dict) -> Key:
    return method, json.dumps(options, sort_keys=True, default=repr)


def method_defaults(method: str) -> dict | None:
    """The registry's options for `method` (None when the registry does not know it)."""
    try:
        from attrwidgets.core.token.catalog import get_method

        return dict(get_method(method).defaults)
    except (ImportError, AttrWidgetsError):
        return None


def keywords_of(fn: Any) -> set[str]:
    """A session method's parameter names (cancel=, on_partial=, on_layer=): none when they cannot be read."""
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, AttrWidgetsError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@dataclass
class CacheEntry:
    """Rows computed so far for one (method, options); rows not computed are NaN."""

    n_targets: int
    n_positions: int
    done: set[int] = field(default_factory=set)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    template: Any = None  # the last Attribution merged in (prompt, options, timestamp, ...)
    version: int = 0

    def __post_init__(self) -> None:
        self.arrays.setdefault("scores", np.full((self.n_targets, self.n_positions), np.nan, np.float32))

    def missing(self, rows: Iterable[int] | None) -> list[int]:
        wanted = range(self.n_targets) if rows is None else rows
        return [r for r in wanted if r not in self.done]

    def merge(self, result: Any, rows: Iterable[int] | None) -> None:
        rows = list(range(self.n_targets) if rows is None else rows)
        scores = np.asarray(result.scores)
        if scores.shape != (self.n_targets, self.n_positions):
            raise AttrWidgetsError(
                f"compute() returned scores of shape {scores.shape}, expected "
                f"({self.n_targets}, {self.n_positions}) (rows targets, columns sources)."
            )
        for name in ROW_ARRAYS:
            new = getattr(result, name, None)
            if new is None:
                continue
            new = np.asarray(new, dtype=np.float32)
            cur = self.arrays.get(name)
            if cur is None or cur.shape != new.shape:
                cur = np.full(new.shape, np.nan, np.float32)
                self.arrays[name] = cur
            cur[rows] = new[rows]
        self.done.update(rows)
        self.template = result
        self.version += 1

    def attribution(self) -> Any:
        """The merged Attribution (None before anything was computed)."""
        if self.template is None:
            return None
        merged = {name: self.arrays[name].copy() for name in ROW_ARRAYS if name in self.arrays}
        return replace(self.template, **merged)


SHOW_ESTIMATE_FROM = 3.0  # seconds: shorter work shows the spinner alone


def shared_parts(live: Any, source: Any, cache_name: Any, name: str = "") -> tuple[threading.RLock, dict, LatestWins]:
    """The lock, cache and worker of a live view: its own, or those of the aw.Source it shares (one lock for the
    shared cache, one worker thread for every view of the source, request ids per view)."""
    name = name or f"attrwidgets-{type(live.widget).__name__}"
    if source is None:
        return threading.RLock(), {}, LatestWins(on_busy=live._set_busy, name=name)
    cache = source.cache(cache_name) if cache_name is not None else {}
    worker = LatestWins(on_busy=live._set_busy, name=name, executor=source.acquire_worker(),
                        release=source.release_worker)
    return source.lock, cache, worker


class LiveWorker:
    """What LiveRows and LiveValues share: a lock, the jobs in flight (each with a cancel event), a worker, the
    busy flag and the estimate shown with it."""

    widget: Any
    lock: threading.RLock
    inflight: list
    worker: LatestWins
    source: Any = None  # the aw.Source whose worker and caches the view shares (None: its own)

    busy_name = "work"  # this worker's part of the view's busy flag

    def _set_busy(self, value: bool) -> None:
        # A view with several workers (a TokenMatrix's rows and its head view) keeps `_busy_parts`: it is busy
        # while any of them is.
        parts = getattr(self.widget, "_busy_parts", None)
        if parts is not None:
            parts[self.busy_name] = value
            value = any(parts.values())
        self.widget.busy = value
        if not value and getattr(self.widget, "busy_estimate", ""):
            self.widget.busy_estimate = ""

    def show_estimate(self, estimate: Callable[[], Any] | None) -> None:
        """Runs on the worker before a computation: the view's busy state says how long it should take. An
        estimate that cannot be made (a user's compute function, a model it cannot read) shows nothing."""
        if estimate is None or not hasattr(self.widget, "busy_estimate"):
            return
        try:
            seconds = float(estimate().seconds)
        except Exception:
            log.debug("no estimate for this computation", exc_info=True)
            return
        if seconds >= SHOW_ESTIMATE_FROM:
            from attrwidgets.core.estimate import format_seconds

            self.widget.busy_estimate = f"about {format_seconds(seconds)}"

    def wait(self, timeout: float | None = None) -> None:
        if self.source is not None:  # a cell waiting for the work (done ahead too) must not hold it still
            self.source.hold_ahead(False)
        self.worker.wait(timeout)

    # -- submitting: a selection's job, or work done ahead (lock held) -------------------------------------
    def submit_needed(self, request_id: int, job: Any, run: Callable[[int], None]) -> None:
        """`job` (in `inflight`) is what a selection needs: what any view of the source computes ahead stops,
        since the worker is needed now, and the job goes on the worker."""
        if self.source is not None:
            self.source.cancel_prefetches()
        if self.worker.submit(request_id, run) is None:
            self.inflight.remove(job)  # the view is closing: nothing will compute it

    def ahead_event(self) -> threading.Event:
        return self.source.ahead_event() if self.source is not None else threading.Event()

    def submit_ahead(self, job: Any, run: Callable[[int], None]) -> bool:
        """`job` (in `inflight`, cancel from ahead_event()) is work done ahead, queued quietly under the current
        request id; the source's next needed job cancels it. False: the view is closing; the job is dropped."""
        if self.source is not None:
            self.source.prefetching(job.cancel)
        job.future = self.worker.submit(self.worker.latest, run, quiet=True)
        if job.future is None:
            self.finished(job)
        return job.future is not None

    def promote(self, job: Any) -> None:
        """Work done ahead that a selection now needs (lock held): from here on it is that selection's job. It
        shows the busy state and its errors, never pauses, and is no longer work ahead, which another view's
        request would cancel; the rest of the work ahead stops, since the worker is needed."""
        job.ahead = False
        job.cancel.pausing = False
        self.worker.promote(job.future)
        if self.source is not None:
            self.source.prefetched(job.cancel)
            self.source.cancel_prefetches()

    def finished(self, job: Any) -> None:
        """A job ran (or was dropped): out of the jobs in flight, and out of the source's work done ahead."""
        with self.lock:
            self.inflight.remove(job)
            if self.source is not None:
                self.source.prefetched(job.cancel)

    def cancel(self) -> None:
        """Stop what is computing: its cancel event is set (compute functions stop at their next check and
        nothing is reported), and no result in flight is shown. The cache keeps every finished row or value,
        the worker stays, and the next request computes."""
        with self.lock:
            for job in self.inflight:
                job.cancel.set()
            self.worker.new_request()

    def close(self) -> None:
        with self.lock:
            for job in self.inflight:
                job.cancel.set()
        self.worker.shutdown()


@dataclass
class _Job:
    key: Key
    method: str
    rows: list[int] | None
    options: dict
    cancel: threading.Event = field(default_factory=threading.Event)
    ahead: bool = False  # a prefetch: silent, and not wanted by the selection (yet)
    future: Any = None


class LiveRows(LiveWorker):
    """Keeps an AttributionSession and fills a widget's `scores` / `completeness_error` for its selection.

    The widget provides traits `method`, `n_steps`, `selected_target`, `methods`, `scores`,
    `completeness_error`, `error`, `busy`, `llm_id`. Options given at construction go to every method whose
    registry defaults name them; `n_steps` goes to methods that take it.
    """

    def __init__(self, widget: Any, session: Any, options: dict, source: Any = None) -> None:
        self.widget = widget
        self.session = session
        self.options = dict(options)
        self.inflight: list[_Job] = []
        self.shown: tuple | None = None
        self.source = source
        self.lock, self.cache, self.worker = shared_parts(self, source, ("rows", id(session)))
        accepted = keywords_of(getattr(session, "compute", None))
        self.can_cancel, self.can_refine = "cancel" in accepted, "on_partial" in accepted

    # -- keys ------------------------------------------------------------------------------------
    def options_for(self, method: str) -> dict:
        accepted = method_defaults(method)
        options = {k: v for k, v in self.options.items() if accepted is None or k in accepted}
        takes_steps = "n_steps" in accepted if accepted is not None else "integrated_gradients" in method
        if takes_steps:
            options["n_steps"] = int(self.widget.n_steps)
        return options

    def current_key(self) -> Key:
        return cache_key(self.widget.method, self.options_for(self.widget.method))

    def entry(self, key: Key) -> CacheEntry:
        if key not in self.cache:
            self.cache[key] = CacheEntry(len(self.widget.target_positions), len(self.widget.tokens))
        return self.cache[key]

    def wanted(self, job: _Job) -> bool:
        """Does the current selection still need `job`? (lock held)"""
        if job.key != self.current_key():
            return False
        return job.rows is None or int(self.widget.selected_target) in job.rows

    # -- requests --------------------------------------------------------------------------------
    def request(self) -> None:
        """What the current selection needs: show the cache now, compute missing rows on the worker."""
        w = self.widget
        with self.lock:
            if self.source is not None:
                self.source.clicked()  # work done ahead holds still while this selection is answered
            request_id = self.worker.new_request()
            for job in self.inflight:
                if not self.wanted(job) and not job.ahead:  # work done ahead stops when the worker is needed
                    job.cancel.set()
            method = w.method
            key = self.current_key()
            entry = self.entry(key)
            self.show(key)
            if w.methods and method not in w.methods:
                w.error = f"Unknown method {method!r}: choose one of {', '.join(w.methods)}."
                return
            if not self.session.is_cheap(method) and int(w.selected_target) < 0:
                return  # no row selected: nothing to compute until one is
            try:
                rows = None if self.session.is_cheap(method) else [int(w.selected_target)]
            except Exception as exc:  # noqa: BLE001 - the widget reports and keeps working
                w.error = describe_error(exc)
                return
            missing = set(entry.missing(rows))
            running = {r for j in self.inflight if j.key == key and not j.cancel.is_set()
                       for r in (range(entry.n_targets) if j.rows is None else j.rows)}
            w.error = ""
            ahead = next((j for j in self.inflight if j.ahead and j.key == key and j.rows == rows
                          and not j.cancel.is_set()), None)
            if missing and ahead is not None:  # computing it ahead already: it is now what the view waits for
                self.promote(ahead)
                return
            if not missing or missing <= running:
                return  # cached, or a running/queued job computes these rows and will show them
            job = _Job(key, method, rows, self.options_for(method))
            self.inflight.append(job)
            self.submit_needed(request_id, job, lambda rid: self._run(rid, job))

    def _run(self, request_id: int, job: _Job) -> None:
        """Runs on the worker thread."""
        try:
            with self.lock:
                if job.cancel.is_set() or not (job.ahead or self.worker.is_latest(request_id) or self.wanted(job)):
                    return
                if not self.cache[job.key].missing(job.rows):  # an uncancellable stale run filled them
                    if job.key == self.current_key():
                        self.show(job.key)
                    return
            extra = {"cancel": job.cancel} if self.can_cancel else {}
            if self.can_refine:
                extra["on_partial"] = lambda *answer: self._show_partial(job, *answer)
            if hasattr(self.session, "estimate") and not job.ahead:
                self.show_estimate(lambda: self.session.estimate(job.method, rows=job.rows, **job.options))
            with computation(job.cancel):
                result = self.session.compute(job.method, rows=job.rows, progress=False, **extra, **job.options)
            with self.lock:
                self.cache[job.key].merge(result, job.rows)  # cached even if stale: it is right for its key
        except Exception as exc:  # any failure goes to the error banner
            log.debug("compute(%r, rows=%r) failed", job.method, job.rows, exc_info=True)
            with self.lock:
                if not job.cancel.is_set() and (self.worker.is_latest(request_id) or self.wanted(job)) \
                        and not job.ahead:  # work done ahead fails silently
                    self.widget.error = describe_error(exc)
            return
        finally:
            self.finished(job)
        with self.lock:
            if job.key == self.current_key():  # the cache only gains rows: showing it never goes back
                if not self.widget.llm_id and getattr(result, "model_id", ""):
                    self.widget.llm_id = result.model_id
                self.show(job.key)
            if not job.ahead and job.rows is not None and getattr(self.widget, "prefetch", False):
                self._prefetch(job)

    def _prefetch(self, done: _Job) -> None:
        """While the user reads the row just computed: the other rows of its method, nearest first, one job each
        (lock held). Silent, cancelled by any request that needs the worker (Source.cancel_prefetches)."""
        entry = self.cache[done.key]
        running = {r for j in self.inflight if j.key == done.key and not j.cancel.is_set() for r in (j.rows or ())}
        row = done.rows[0]
        others = sorted((r for r in entry.missing(None) if r not in running), key=lambda r: abs(r - row))
        for r in others:
            job = _Job(done.key, done.method, [r], done.options, cancel=self.ahead_event(), ahead=True)
            self.inflight.append(job)
            if not self.submit_ahead(job, lambda rid, j=job: self._run(rid, j)):
                return

    def show(self, key: Key) -> None:
        entry = self.cache[key]
        stamp = (key, entry.version)
        if stamp == self.shown:
            return
        compl = entry.arrays.get("completeness_error")
        with self.widget.hold_sync():
            self.widget.scores = entry.arrays["scores"].copy()
            self.widget.completeness_error = None if compl is None else compl.copy()
            if getattr(self.widget, "refining", None):
                self.widget.refining = []
        self.shown = stamp

    def _show_partial(self, job: _Job, row: int, scores: np.ndarray, error: float, evaluations: int) -> None:
        """An intermediate answer of a refining method (worker thread): shown in its row, marked as refining,
        never cached (the cache holds final answers only). Only while the job is what the view shows."""
        with self.lock:
            entry = self.cache[job.key]
            if job.ahead or job.cancel.is_set() or job.key != self.current_key() or row in entry.done:
                return
            shown = entry.arrays["scores"].copy()
            shown[row] = scores
            compl = entry.arrays.get("completeness_error")
            compl = np.full(entry.n_targets, np.nan, np.float32) if compl is None else compl.copy()
            compl[row] = error
            refining = [pair for pair in self.widget.refining if pair[0] != row] + [[int(row), int(evaluations)]]
            with self.widget.hold_sync():
                self.widget.scores, self.widget.completeness_error = shown, compl
                self.widget.refining = refining
            self.shown = None  # the next show() repaints from the cache

    def result(self) -> Any:
        with self.lock:
            return self.entry(self.current_key()).attribution()
