"""The busy state says how long the work should take (busy_estimate), for work of a few seconds or more; an
estimate that cannot be made never stops the work; the sessions behind the live views estimate their own
calls (core/estimate.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import attrwidgets as aw
from attrwidgets.core.estimate import Estimate
from attrwidgets.widgets import TokenMatrix
from attrwidgets.widgets.live import SHOW_ESTIMATE_FROM
from attrwidgets.widgets.live_values import LiveValues

from .support import FakeSession, wait_until

PROMPT = "The capital of France is"


class EstimatingSession(FakeSession):
    def __init__(self, seconds: float | None, **kwargs):
        super().__init__(**kwargs)
        self.seconds = seconds

    def estimate(self, method, rows=None, **options):
        if self.seconds is None:
            raise RuntimeError("no estimate for this one")
        return Estimate(self.seconds, 1 << 20, "cpu")


@pytest.mark.parametrize(("seconds", "shown"), [(42.0, "about 42 s"), (150.0, "about 2 min"),
                                                (SHOW_ESTIMATE_FROM / 2, ""), (None, "")])
def test_the_token_matrix_shows_the_estimate_while_busy(seconds, shown):
    gate = threading.Event()
    session = EstimatingSession(seconds, gate=gate)
    w = TokenMatrix(session=session, method="integrated_gradients", n_steps=4)
    wait_until(lambda: session.calls)  # computing, held at the gate
    assert w.busy is True and w.busy_estimate == shown
    gate.set()
    w.wait(30)
    assert w.busy is False and w.busy_estimate == "" and w.error == ""
    assert np.isfinite(w.scores[0]).all()  # a failing estimate did not stop the work
    w.close()


class FakeWidget:
    busy = False
    error = ""
    busy_estimate = ""


def test_live_values_show_the_estimate_it_is_given():
    widget, seen, gate = FakeWidget(), [], threading.Event()
    live = LiveValues(widget, on_ready=lambda key, value: seen.append((key, value)))

    def compute(cancel):
        gate.wait(10)
        return 7

    live.request("a", compute, estimate=lambda: Estimate(12.0, 0, "cpu"))
    wait_until(lambda: widget.busy_estimate == "about 12 s")
    gate.set()
    live.wait(10)
    assert seen == [("a", 7)] and widget.busy_estimate == "" and widget.busy is False
    live.close()


def test_each_live_session_estimates_its_own_work():
    from attrwidgets.core.depass.heads import HeadSession
    from attrwidgets.core.lig.compute import LigSession
    from attrwidgets.core.token.session import AttributionSession
    from attrwidgets.testing import tiny_handle

    handle = tiny_handle("llama")
    estimates = [
        AttributionSession(handle, PROMPT, max_new_tokens=2).estimate("integrated_gradients", rows=[1], n_steps=8),
        HeadSession(handle, PROMPT, max_new_tokens=2).estimate(1),
        LigSession(handle, PROMPT).estimate(["composed"], [0, 1], [2]),
    ]
    graph = aw.attribution_graph(handle, PROMPT, progress=False)
    estimates.append(graph.engine.estimate(graph, targets=[5]))
    for est in estimates:
        assert isinstance(est, Estimate) and est.seconds > 0 and est.peak_bytes > 0 and est.device == "cpu"
    lig = LigSession(handle, PROMPT)
    assert lig.estimate(["att"], [0], [2]).seconds > lig.estimate(["layer"], [0], [2]).seconds  # a path per head
