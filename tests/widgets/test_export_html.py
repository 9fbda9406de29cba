"""to_html: a standalone page of the same view; no network, hostile token text stays text."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from attrwidgets.errors import AttrWidgetsError
from attrwidgets.export_html import to_html
from attrwidgets.widgets import TokenMatrix
from attrwidgets.widgets.html_page import script_json

from .support import HOSTILE, SCRIPT_BREAKER, FakeSession

pytestmark = pytest.mark.usefixtures("built_bundle")


def _state(page: str) -> dict:
    block = re.search(r'<script type="application/json" id="aw-state">(.*?)</script>', page, re.DOTALL).group(1)
    return json.loads(block)


def test_page_is_self_contained(result, tmp_path):
    page = to_html(result, tmp_path / "view.html")
    assert (tmp_path / "view.html").read_text(encoding="utf-8") == page
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)
    assert not re.search(r"<link[^>]*\bhref\s*=", page, re.IGNORECASE)
    assert not re.search(r"https?://", page)  # nothing fetched at run time: no CDN, no fonts
    assert "import(url)" in page and "URL.createObjectURL" in page  # the bundle loads from a blob:


def test_hostile_tokens_cannot_escape_the_data_block(result):
    page = to_html(result)
    assert page.count("</script") == 3  # the three closing tags of the page itself, nothing from data
    assert "<!--" not in page
    assert HOSTILE not in page and "<img" not in page
    tokens = _state(page)["tokens"]  # ...and JSON.parse gives the exact text back
    assert tokens[2]["text"] == HOSTILE and tokens[4]["clean"] == SCRIPT_BREAKER


def test_script_json_escapes():
    text = script_json({"t": "</script><!-- & \u2028 >"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"t": "</script><!-- & \u2028 >"}


def test_tensors_embedded_as_base64_float32(result):
    import base64

    state = _state(to_html(result, selected_target=2, sign_mode="absolute"))
    scores = state["scores"]
    assert scores["dtype"] == "float32" and scores["shape"] == [3, 8]
    decoded = np.frombuffer(base64.b64decode(scores["base64"]), "<f4").reshape(3, 8)
    np.testing.assert_array_equal(decoded, result.scores)
    assert state["selected_target"] == 2 and state["sign_mode"] == "absolute"


def test_export_from_live_widget_takes_its_view_state():
    w = TokenMatrix(session=FakeSession(), method="integrated_gradients", n_steps=2).wait(10)
    w.selected_target = 1
    w.hide_special = True
    w.wait(10)
    state = _state(to_html(w))
    assert state["selected_target"] == 1 and state["hide_special"] is True
    assert state["completeness_error"] is not None


def test_export_rejects_bad_input(result):
    with pytest.raises(AttrWidgetsError, match="Attribution or a TokenMatrix"):
        to_html({"scores": []})
    with pytest.raises(AttrWidgetsError, match="unknown option"):
        to_html(result, normalisation="global")
    with pytest.raises(AttrWidgetsError, match="selected_target"):
        to_html(result, selected_target=9)


def test_front_end_never_parses_html(built_bundle):
    """Token text is untrusted: the sources and the bundle only ever use textContent."""
    from pathlib import Path

    sources = [p.read_text() for p in (Path(__file__).resolve().parents[2] / "js").rglob("*.ts")]
    for text in [*sources, built_bundle.read_text()]:
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text


def test_to_html_takes_a_graph_and_a_graph_view(tmp_path):
    import attrwidgets as aw
    from attrwidgets.testing import toy_graph

    graph = toy_graph(seed=3)
    page = aw.to_html(graph, tmp_path / "g.html")
    assert (tmp_path / "g.html").read_text() == page
    assert not re.search(r"<script[^>]*\bsrc\s*=|https?://", page, re.IGNORECASE)
    # the page holds the graph as a view at its default thresholds would show it, and cannot rebuild
    state = _state(page)
    shown = aw.GraphView(graph).wait()
    assert state["node_ids"] == list(shown.node_ids) and state["node_threshold"] == 0.8
    assert state["static_page"] is True and state["can_rebuild"] is False
    # a view's own thresholds, pins and selection travel
    view = aw.GraphView(graph, node_threshold=0.5).wait()
    view.pinned = [view.node_ids[0]]
    view.selected_node = view.node_ids[1]
    state = _state(aw.to_html(view))
    assert state["node_threshold"] == 0.5 and state["node_ids"] == list(view.node_ids)
    assert len(view.node_ids) < len(shown.node_ids)
    assert state["pinned"] == [view.node_ids[0]] and state["selected_node"] == view.node_ids[1]
