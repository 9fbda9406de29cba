"""aw.Source: one model and one prompt, generated once, that live views share (docs/architecture.md, "Live
views").

Every live view is built through a Source: `TokenMatrix(model=m, prompt=p)` makes its own, and
`TokenMatrix(source=s)`, `HeadGrid(source=s)`, `LayerFlow(source=s)`, `GraphView(source=s)` share one. Shared,
the views see the same tokens at the same positions (the greedy continuation is generated once), the sessions
behind them are built once per option set, their caches are one, and their work runs one job at a time on one
worker thread (each view's own last request wins; two views never run the model at once). The core holds the
sequence, the sessions and the thread; the views (widgets/live.py) decide what a stale job may do.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from typing import Any

from attrwidgets.core.sequence import PreparedSequence, prepare_sequence
from attrwidgets.errors import AttrWidgetsError


class Source:
    """model: a ModelHandle or a name / folder (aw.load_model). prompt: a string, chat messages or token ids.
    max_new_tokens are generated greedily once (0: the prompt alone), or `target` is forced."""

    def __init__(self, model, prompt, *, max_new_tokens: int = 8, target: str | None = None) -> None:
        from attrwidgets.models import as_handle

        self.handle = as_handle(model)
        if target is None and max_new_tokens and not self.handle.adapter.causal:
            raise AttrWidgetsError(f"{self.handle.adapter.name!r} is not a causal LM: it cannot generate. Make the "
                                   "Source with max_new_tokens=0 (or force a continuation with target=...).")
        self.prompt = prompt
        self.sequence: PreparedSequence = prepare_sequence(self.handle, prompt, max_new_tokens=max_new_tokens,
                                                           target=target, min_new_tokens=0)
        self.generation = {"max_new_tokens": max_new_tokens, "forced_target": target, "greedy": target is None}
        self.lock = threading.RLock()  # one lock for the shared caches and every view's bookkeeping on them
        self._sessions: dict[tuple, Any] = {}
        self._caches: dict[Any, dict] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._users = 0
        self._prefetches: set[threading.Event] = set()  # the cancel events of the work done ahead
        self._quiet_until = 0.0  # work done ahead sleeps until then (monotonic seconds): a click is being answered
        self._ahead_held = False  # and while this is True: a cell of the user's runs

    def __repr__(self) -> str:
        return (f"Source({self.handle.model_id!r}, {len(self.tokens)} tokens, "
                f"{len(self.tokens) - self.n_prompt} generated, {len(self._sessions)} sessions)")

    # -- the sequence every view shows ---------------------------------------------------------------
    @property
    def tokens(self) -> list:
        return self.sequence.tokens

    @property
    def n_prompt(self) -> int:
        return self.sequence.n_prompt

    @property
    def target_positions(self) -> list[int]:
        return self.sequence.target_positions

    @property
    def prompt_ids(self) -> list[int]:
        return self.sequence.input_ids[: self.n_prompt].tolist()

    @property
    def model_id(self) -> str:
        return self.handle.model_id

    # -- sessions, one per kind and option set -------------------------------------------------------
    def session(self, kind: str, **options) -> Any:
        """The session of `kind` on this sequence, built on first use: "token" (AttributionSession), "heads"
        (HeadSession), "lig" (LigSession), or "graph" (the attribution graph of the prompt, whose engine rebuilds
        it for other targets)."""
        key = (kind, json.dumps(options, sort_keys=True, default=repr))
        with self.lock:
            if key not in self._sessions:
                self._sessions[key] = self._build(kind, options)
            return self._sessions[key]

    def _build(self, kind: str, options: dict) -> Any:
        if kind == "token":
            from attrwidgets.core.token.session import AttributionSession

            if self.n_prompt == len(self.tokens):
                raise AttrWidgetsError("Token attribution explains generated tokens: this Source generated none. "
                                       "Make it with max_new_tokens >= 1 or a target.")
            return AttributionSession(self.handle, self.sequence, **options)
        if kind == "heads":
            from attrwidgets.core.depass.heads import HeadSession

            return HeadSession(self.handle, self.sequence, **options)
        if kind == "lig":
            from attrwidgets.core.lig.compute import LigSession

            return LigSession(self.handle, self.sequence, **options)
        if kind == "graph":  # the attribution graph of the prompt's next token (its engine rebuilds others)
            from attrwidgets.core.graph.attribution import attribution_graph

            return attribution_graph(self.handle, self.prompt_ids, **{"progress": False, **options})
        raise AttrWidgetsError(f"Unknown session kind {kind!r}: use 'token', 'heads', 'lig' or 'graph'.")

    # -- what the views share ------------------------------------------------------------------------
    def cache(self, name: Any) -> dict:
        """A cache the views of this source share (guard it with `lock`)."""
        with self.lock:
            return self._caches.setdefault(name, {})

    def acquire_worker(self) -> ThreadPoolExecutor:
        """The one worker thread every view of this source computes on; each view that takes it gives it back
        with release_worker() when it closes, and the thread ends with the last one."""
        with self.lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="attrwidgets-source")
            self._users += 1
            return self._executor

    # -- work done ahead (prefetch): never in the way of a click --------------------------------------------
    def ahead_event(self) -> threading.Event:
        """The cancel event of work done ahead: it also holds that work still (asleep, the GIL and the cores free)
        for a moment after every selection (`clicked`), so a click that needs no computation repaints at once."""
        return _PausingEvent(self)

    def clicked(self) -> None:
        """A selection changed in a view of this source: work done ahead holds still for CLICK_QUIET_S."""
        self._quiet_until = time.monotonic() + CLICK_QUIET_S

    def hold_ahead(self, held: bool) -> None:
        """While held (the user's own cell runs in this kernel), work done ahead holds still: it is for the
        clicks to come, and must not slow down what the user asked for."""
        self._ahead_held = bool(held)

    def prefetching(self, cancel: threading.Event) -> None:
        """A view computes ahead on the worker; its `cancel` is set when any view of the source needs the worker."""
        with self.lock:
            self._prefetches.add(cancel)

    def prefetched(self, cancel: threading.Event) -> None:
        with self.lock:
            self._prefetches.discard(cancel)

    def cancel_prefetches(self) -> None:
        """A view needs the worker for a selection: every prefetch of every view stops at its next check (the
        worker runs one job at a time). Work ahead that a selection came to need is no longer a prefetch."""
        with self.lock:
            for cancel in self._prefetches:
                cancel.set()
            self._prefetches.clear()

    def release_worker(self) -> None:
        with self.lock:
            self._users -= 1
            if self._users > 0 or self._executor is None:
                return
            executor, self._executor = self._executor, None
        executor.shutdown(wait=False, cancel_futures=True)


# Measured on 2 cores, the default model: a cached click repaints in 45-98 ms with nothing computing, and in
# 91-134 ms beside work done ahead (which holds the GIL and both cores); the browser needs well under this.
CLICK_QUIET_S = 0.4


class _PausingEvent(threading.Event):
    """A cancel event whose checks inside the computation (between chunks and half-layers, on the thread running
    it: `computing()`) sleep while the source answers a click: the work done ahead pauses there, without losing
    anything, and goes on afterwards. Every other check (the views' bookkeeping, under their lock) never waits."""

    def __init__(self, source: Source) -> None:
        super().__init__()
        self._source = source
        self.pausing = True  # False once a selection needs this work: then it never waits
        self._computing: threading.Thread | None = None

    @contextmanager
    def computing(self):
        self._computing = threading.current_thread()
        try:
            yield
        finally:
            self._computing = None

    def is_set(self) -> bool:
        while (self.pausing and self._computing is threading.current_thread() and not super().is_set()
               and (self._source._ahead_held or time.monotonic() < self._source._quiet_until)):
            time.sleep(0.01)
        return super().is_set()


def computation(cancel: threading.Event):
    """Around a computation that checks `cancel`: work done ahead pauses at those checks while a click is answered
    (a plain event: nothing)."""
    return cancel.computing() if isinstance(cancel, _PausingEvent) else nullcontext()

