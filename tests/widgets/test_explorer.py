"""aw.explore (widgets/explorer.py): one Source, every view, linked with each other and with the Explorer; the
bad input the issue names is a clear error. The panel itself is tested in JupyterLab (tests/ui)."""

from __future__ import annotations

import threading
import time

import pytest

import attrwidgets as aw
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import tiny_handle, tiny_masked_lm

PROMPT = "The capital of France is"


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("attrwidgets")}


@pytest.fixture(scope="module")
def handle():
    return tiny_handle("llama")


def test_the_explorer_holds_every_view_of_one_source_linked(handle):
    before = _threads()
    ex = aw.explore(handle, PROMPT, max_new_tokens=3, method="saliency").wait(120)
    assert list(ex.views) == ["tokens", "heads", "graph", "flow"]
    assert ex.parts == {name: f"anywidget:{view.model_id}" for name, view in ex.views.items()}
    assert ex.tokens == ex.views["tokens"].tokens == ex.views["heads"].tokens
    assert all(v.error == "" for v in ex.views.values())
    ex.selected_target = 2  # from Python: every view moves
    position = ex.target_positions[2]
    assert ex.views["tokens"].selected_target == ex.views["heads"].selected_target == 2
    assert ex.views["flow"].target_positions[ex.views["flow"].selected_target] == position
    ex.views["heads"].selected_layer = 1  # from a view: the Explorer follows
    assert ex.selected_layer == 1 == ex.views["flow"].selected_layer
    ex.close()
    deadline = time.monotonic() + 10
    while _threads() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _threads() - before  # closing the Explorer closes its views and their worker


def test_a_diffusion_lm_gets_the_timeline_and_an_encoder_the_flow():
    ex = aw.explore(tiny_masked_lm(), "the cat sat", views=("timeline", "flow"))
    ex.wait(120)
    assert list(ex.views) == ["timeline", "flow"] and ex.views["timeline"].error == ""
    ex.close()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"views": ("tokens", "attention")}, r"Unknown view\(s\) \['attention'\]: aw.explore shows tokens, heads"),
    ({"views": ()}, "Unknown view"),
    ({"views": ("tokens", "tokens")}, "lists a view twice"),
    ({"show": "left"}, "aw.explore shows 'inline', 'right', 'split-right', 'tab-after'"),
])
def test_bad_input_is_a_clear_error(handle, kwargs, message):
    with pytest.raises(AttrWidgetsError, match=message):
        aw.explore(handle, PROMPT, **kwargs)


def test_a_view_the_model_cannot_do_says_which_it_can():
    with pytest.raises(AttrWidgetsError, match=r"cannot show \['tokens'\]: they explain generated tokens.*It can "
                                               r"show \['flow', 'timeline'\]"):
        aw.explore(tiny_masked_lm(), "the cat", views=("tokens",))


def test_show_opens_a_side_panel_that_closes_with_the_explorer(handle):
    ex = aw.explore(handle, PROMPT, max_new_tokens=2, method="saliency", views=("tokens", "heads"), show="split-right")
    panel = ex._panel
    assert panel.anchor == "split-right" and panel.title == "attrwidgets explorer"
    ex.close()
    assert panel.comm is None  # closed with it


@pytest.mark.parametrize("arch", ["gemma2", "gemma3", "olmo2", "gpt_neox"])
def test_every_view_runs_on_the_newer_architectures(arch):
    """The views on the architectures issue 18 added: each part computes without an error, a head and a
    target picked from Python recompute, and GPT-NeoX's flow (no MLP route) still draws its layer route."""
    ex = aw.explore(tiny_handle(arch), PROMPT, max_new_tokens=2, method="saliency").wait(120)
    try:
        assert all(v.error == "" for v in ex.views.values()), {k: v.error for k, v in ex.views.items()}
        ex.selected_target = 1
        ex.selected_layer, ex.selected_head = 1, 2
        ex.wait(120)
        assert all(v.error == "" for v in ex.views.values()), {k: v.error for k, v in ex.views.items()}
        if arch == "gpt_neox":  # no MLP route: the flow says why and keeps working
            flow = ex.views["flow"]
            flow.route = "composed"
            flow.wait(120)
            assert "in parallel from the block input" in flow.error
            flow.route = "layer"
            flow.wait(120)
            assert flow.error == ""
    finally:
        ex.close()
