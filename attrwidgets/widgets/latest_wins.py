"""One worker thread for a live view, and request ids: the newest request is the one shown (widgets/live.py
keeps the caches and decides what a stale job may still do). Views of one aw.Source share its worker thread
(core/source.py): their jobs run one at a time, and each view's request ids stay its own."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger("attrwidgets.widgets.live")


class LatestWins:
    """One worker thread, request ids, a busy flag and a way to wait for idle."""

    def __init__(self, on_busy: Callable[[bool], None], name: str = "attrwidgets",
                 executor: ThreadPoolExecutor | None = None, release: Callable[[], None] | None = None) -> None:
        """executor: a shared worker thread (an aw.Source's), given back with `release()` on shutdown."""
        self._owned = executor is None
        self._release = release
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._futures: set[Future] = set()
        self._quiet: set[Future] = set()  # prefetches: they do not make the view busy until promoted
        self._on_busy = on_busy
        self._cond = threading.Condition()
        self._latest = 0
        self._pending = 0

    def new_request(self) -> int:
        with self._cond:
            self._latest += 1
            return self._latest

    def is_latest(self, request_id: int) -> bool:
        return request_id == self._latest

    @property
    def latest(self) -> int:
        return self._latest

    def submit(self, request_id: int, job: Callable[[int], None], quiet: bool = False) -> Future | None:
        """quiet: work done ahead (a prefetch): wait() waits for it, but it makes the view busy only once
        promote()d, when a selection comes to need it. None: the worker is shut down (the view or the
        interpreter closing), and the job will not run."""
        with self._cond:
            try:
                future = self._executor.submit(job, request_id)
            except RuntimeError:  # "cannot schedule new futures after shutdown"
                log.debug("attrwidgets worker is shut down: job dropped")
                return None
            self._pending += 1
            if not quiet and self._pending - len(self._quiet) == 1:
                self._on_busy(True)
            # The done callback also runs for futures cancelled by shutdown(), so wait() never hangs.
            self._futures.add(future)
            if quiet:
                self._quiet.add(future)
        future.add_done_callback(self._done)
        return future

    def promote(self, future: Future) -> None:
        """A prefetch the selection now needs: from here on it makes the view busy."""
        with self._cond:
            if future in self._quiet and not future.done():
                self._quiet.discard(future)
                if self._pending - len(self._quiet) == 1:
                    self._on_busy(True)

    def _done(self, future: Future) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("attrwidgets worker job failed", exc_info=future.exception())
        with self._cond:
            self._futures.discard(future)
            quiet = future in self._quiet
            self._quiet.discard(future)
            self._pending -= 1
            if not quiet and self._pending == len(self._quiet):
                self._on_busy(False)
            if self._pending == 0:
                self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._pending == 0, timeout=timeout):
                raise TimeoutError(f"still computing after {timeout} s")

    def shutdown(self) -> None:
        with self._cond:
            self._latest += 1  # whatever is still running is no longer shown
            queued = list(self._futures)
        if self._owned:
            self._executor.shutdown(wait=False, cancel_futures=True)
        else:  # a shared worker goes on for the other views: only this view's queued jobs are dropped
            for future in queued:
                future.cancel()
            if self._release is not None:
                self._release, release = None, self._release
                release()
