"""Work done ahead (widgets/live_values.py, widgets/live.py, core/source.py): while the user reads, a live view
computes what the next click likely needs, silently, and never in the way of a click."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import traitlets

import attrwidgets as aw
from attrwidgets.testing import tiny_handle
from attrwidgets.widgets.live_values import LiveValues

from .support import wait_until

PROMPT = "The capital of France is"


class Holder(traitlets.HasTraits):
    busy = traitlets.Bool(False)
    error = traitlets.Unicode("")


@pytest.fixture(scope="module")
def handle():
    return tiny_handle("llama")


def gated(log: list, gate: threading.Event):
    """compute functions that record their key, wait for `gate` (or their cancel) and return the key."""
    def make(key):
        def compute(cancel: threading.Event):
            log.append(key)
            while not gate.wait(0.01):
                if cancel.is_set():
                    raise RuntimeError("cancelled")
            return key
        return compute
    return make


def test_a_prefetch_is_silent_and_a_click_on_it_waits_for_it_instead_of_starting_again(handle):
    source = aw.Source(handle, PROMPT, max_new_tokens=2)
    holder, shown, log, gate = Holder(), [], [], threading.Event()
    values = LiveValues(holder, lambda key, value: shown.append((key, value)), source=source, cache_name="t1")
    make = gated(log, gate)
    values.prefetch([(k, make(k)) for k in (1, 2, 3)])
    wait_until(lambda: log == [1])
    assert holder.busy is False and shown == []  # nothing to show and no busy flag while computing ahead
    values.request(1, make(1))  # the click needs what is being computed ahead: promoted, not restarted
    assert holder.busy is True
    gate.set()
    values.wait(10)
    # what the click did not need stopped (a view schedules new work ahead once it shows the answer)
    assert shown == [(1, 1)] and log == [1] and set(values.cache) == {1}
    values.close()


def test_work_ahead_a_click_needs_is_not_cancelled_by_the_next_view_s_request(handle):
    """One click reaches several views: the grid takes over the row it was computing ahead, then the matrix needs
    the worker and stops every prefetch. The grid's row is no longer a prefetch: it goes on and shows (once,
    in CI, the grid waited forever for a row cancelled this way)."""
    source = aw.Source(handle, PROMPT, max_new_tokens=2)
    grid_holder, matrix_holder, shown, log, gate = Holder(), Holder(), [], [], threading.Event()
    grid = LiveValues(grid_holder, lambda key, value: shown.append(key), source=source, cache_name="t4")
    matrix = LiveValues(matrix_holder, lambda key, value: None, source=source, cache_name="t5")
    make = gated(log, gate)
    grid.prefetch([(2, make(2))])
    wait_until(lambda: log == [2])
    grid.request(2, make(2))  # the click: the grid takes over its work ahead
    matrix.request("row 2", lambda cancel: "scores")  # the same click, in the next linked view
    threading.Event().wait(0.1)  # time for a cancelled computation to notice it (at its next check)
    gate.set()
    grid.wait(10), matrix.wait(10)
    assert shown == [2] and grid.cache == {2: 2} and grid_holder.error == "" and log == [2]
    grid.close(), matrix.close()


def test_a_click_anywhere_on_the_source_stops_every_prefetch(handle):
    source = aw.Source(handle, PROMPT, max_new_tokens=2)
    first, second = Holder(), Holder()
    log, gate = [], threading.Event()
    ahead = LiveValues(first, lambda k, v: None, source=source, cache_name="t2")
    clicked = LiveValues(second, lambda k, v: None, source=source, cache_name="t3")
    ahead.prefetch([(k, gated(log, gate)(k)) for k in (1, 2, 3)])
    wait_until(lambda: log == [1])
    clicked.request("needed", lambda cancel: "now")  # another view needs the one worker
    clicked.wait(10)  # it did not wait for the prefetch (the gate is still closed)
    assert clicked.cache == {"needed": "now"}
    ahead.wait(10)
    assert log == [1] and ahead.cache == {} and first.error == ""  # cancelled, silently, the rest skipped
    gate.set()
    ahead.close(), clicked.close()


def test_the_explorer_computes_the_other_targets_ahead(handle):
    ex = aw.explore(handle, PROMPT, max_new_tokens=3, method="integrated_gradients", views=("tokens", "heads"))
    ex.wait(120)
    matrix, grid = ex.views["tokens"], ex.views["heads"]
    assert matrix.prefetch and grid.prefetch
    assert set(grid.computed_rows()) == {0, 1, 2}  # the grid's other targets, computed while nobody clicked
    assert np.isfinite(matrix.scores).all(1).tolist() == [True, True, True]  # and the matrix's IG rows
    assert matrix.selected_target == 0 and matrix.error == grid.error == ""
    busy = []
    grid.observe(lambda change: busy.append(change["new"]), names="busy")
    ex.selected_target = 2  # computed ahead: shown at once, no busy state
    assert busy == [] and np.isfinite(grid.contributions).all()
    ex.close()


def test_a_lone_view_does_not_compute_ahead(handle):
    grid = aw.HeadGrid(model=handle, prompt=PROMPT, max_new_tokens=3).wait(120)
    assert not grid.prefetch and set(grid.computed_rows()) == {0}
    grid.close()


def test_work_done_ahead_holds_still_while_a_click_is_answered(handle):
    """Its cancel checks sleep for a moment after every selection (the GIL and the cores go to the click), and not
    once a selection needs that work, nor once it is cancelled."""
    import time

    from attrwidgets.core.source import CLICK_QUIET_S, computation

    source = aw.Source(handle, PROMPT, max_new_tokens=1)
    event = source.ahead_event()
    source.clicked()
    start = time.monotonic()
    assert not event.is_set() and time.monotonic() - start < 0.05  # outside the computation: bookkeeping never waits
    computing = computation(event)
    computing.__enter__()
    source._quiet_until = 0.0
    start = time.monotonic()
    assert not event.is_set() and time.monotonic() - start < 0.05  # no click: no wait
    source.clicked()
    start = time.monotonic()
    assert not event.is_set() and time.monotonic() - start >= CLICK_QUIET_S * 0.9
    source.clicked()
    event.pausing = False  # promoted: what a selection waits for never sleeps
    start = time.monotonic()
    assert not event.is_set() and time.monotonic() - start < 0.05
    event.pausing = True
    threading.Timer(0.05, event.set).start()  # cancelled while asleep: it says so at once
    start = time.monotonic()
    assert event.is_set() and time.monotonic() - start < CLICK_QUIET_S * 0.8
    computing.__exit__(None, None, None)


def test_a_running_cell_holds_the_work_ahead_and_wait_releases_it(handle, monkeypatch):
    """In IPython the explorer's work done ahead holds still while a cell runs; a wait() in that cell lets it go
    on (it waits for that work)."""
    import types

    import IPython
    from IPython.core.events import EventManager, available_events

    shell = types.SimpleNamespace()
    shell.events = EventManager(shell, available_events)
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    ex = aw.explore(handle, PROMPT, max_new_tokens=2, method="saliency", views=("tokens", "heads"))
    shell.events.trigger("pre_run_cell", None)
    assert ex.source._ahead_held
    ex.wait(120)  # would never end if the held work stayed held
    assert not ex.source._ahead_held
    shell.events.trigger("pre_run_cell", None)
    shell.events.trigger("post_run_cell", None)
    assert not ex.source._ahead_held
    ex.close()
    shell.events.trigger("pre_run_cell", None)  # closed: its hooks are gone
    assert not ex.source._ahead_held
