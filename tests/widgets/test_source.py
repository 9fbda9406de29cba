"""aw.Source (core/source.py): live views built from one model and prompt share one generation, one session per
kind, one cache and one worker thread; each view's own last request still wins."""

from __future__ import annotations

import functools
import threading
import time

import numpy as np
import pytest

import attrwidgets as aw
import attrwidgets.core.sequence as sequence_module
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import tiny_handle, tiny_masked_lm
from attrwidgets.widgets.token_matrix import LIVE_REFINEMENT

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def handle():
    return tiny_handle("llama")


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("attrwidgets")}


def test_views_of_one_source_generate_once_and_show_the_same_tokens(handle, monkeypatch):
    calls = []
    real = sequence_module.greedy_continue
    monkeypatch.setattr(sequence_module, "greedy_continue", lambda *a, **k: calls.append(1) or real(*a, **k))
    source = aw.Source(handle, PROMPT, max_new_tokens=3)
    views = [aw.TokenMatrix(source=source, method="saliency"), aw.HeadGrid(source=source),
             aw.LayerFlow(source=source, n_steps=4, granularity="layer"), aw.GraphView(source=source)]
    for view in views:
        view.wait(120)
        assert view.error == "", (type(view).__name__, view.error)
    assert len(calls) == 1  # the continuation is generated once, for every view
    tokens = [t["id"] for t in views[0].tokens]
    assert [t["id"] for t in views[1].tokens] == tokens == [t["id"] for t in views[2].tokens]
    assert [t["id"] for t in views[3].tokens] == tokens[: source.n_prompt]  # the graph explains the prompt's next token
    assert views[0].target_positions == views[1].target_positions == source.target_positions
    for view in views:
        view.close()


def test_two_views_share_one_session_one_cache_and_give_the_numbers_of_a_plain_call(handle):
    source = aw.Source(handle, PROMPT, max_new_tokens=2)
    first = aw.TokenMatrix(source=source, method="integrated_gradients", n_steps=8).wait(120)
    session = source.session("token")
    computed = []
    real = session.compute
    session.compute = functools.wraps(real)(lambda *a, **k: computed.append(k.get("rows")) or real(*a, **k))
    second = aw.TokenMatrix(source=source, method="integrated_gradients", n_steps=8).wait(120)
    assert computed == []  # row 0 was in the shared cache
    np.testing.assert_array_equal(first.scores[0], second.scores[0])
    plain = aw.attribute(handle, PROMPT, method="integrated_gradients", max_new_tokens=2, n_steps=8, progress=False,
                         **LIVE_REFINEMENT)  # what a live view passes (docs/methods/token.md, "In a live view")
    np.testing.assert_allclose(second.scores[0], plain.scores[0], rtol=1e-5, atol=1e-7)
    second.selected_target = 1
    second.wait(120)
    assert computed == [[1]]
    first.selected_target = 1
    first.wait(120)
    assert computed == [[1]]  # computed once for both views
    first.close()
    second.close()


def test_one_worker_thread_for_every_view_and_none_left_after_close(handle):
    before = _threads()
    source = aw.Source(handle, PROMPT, max_new_tokens=2)
    views = [aw.TokenMatrix(source=source, method="saliency"), aw.HeadGrid(source=source)]
    for view in views:
        view.wait(60)
    new = _threads() - before
    assert [t.name for t in new] == ["attrwidgets-source_0"]  # one thread for both views
    views[0].close()
    assert _threads() - before == new  # the other view still computes on it
    views[1].close()
    deadline = time.monotonic() + 10
    while _threads() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _threads() - before
    again = aw.HeadGrid(source=source).wait(60)  # a later view starts the worker again
    assert again.error == ""
    again.close()


def test_bad_sources_are_clear_errors(handle):
    source = aw.Source(handle, PROMPT, max_new_tokens=2)
    with pytest.raises(AttrWidgetsError, match=r"takes no \['prompt'\]: the source has them"):
        aw.TokenMatrix(source=source, prompt="other")
    with pytest.raises(AttrWidgetsError, match="source must be an aw.Source"):
        aw.HeadGrid(source="The capital")
    with pytest.raises(AttrWidgetsError, match="takes a graph or source"):
        aw.GraphView(aw.attribution_graph(handle, PROMPT, progress=False), source=source)
    with pytest.raises(AttrWidgetsError, match="not a causal LM: it cannot generate"):
        aw.Source(tiny_masked_lm(), "the cat", max_new_tokens=1)
    with pytest.raises(AttrWidgetsError, match="samples its own continuation"):
        aw.DiffusionTimeline(source=aw.Source(tiny_masked_lm(), "the cat", target=" sat"))
    with pytest.raises(AttrWidgetsError, match="generated none"):
        aw.TokenMatrix(source=aw.Source(handle, PROMPT, max_new_tokens=0))
    with pytest.raises(AttrWidgetsError, match="needs model=<ModelHandle> and prompt"):
        aw.TokenMatrix(model=handle)
