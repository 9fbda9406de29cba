"""aw.to_html(ex) / ex.to_html(): the linked Explorer as one standalone page (export_explorer.py): each part's
state as the kernel holds it, the data its standalone() answers from, the Explorer's bundle inlined, nothing
fetched. The page in Chromium: test_explorer_in_browser.py."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

import attrwidgets as aw
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import tiny_handle

pytestmark = pytest.mark.usefixtures("built_bundle")

PROMPT = "The capital of France is"
LINKED = ("selected_target", "selected_position", "selected_layer", "selected_head")


@pytest.fixture(scope="module")
def explorer():
    ex = aw.explore(tiny_handle("llama"), PROMPT, max_new_tokens=3, method="saliency").wait(120)
    ex.selected_target = 1
    ex.wait(120)
    yield ex
    ex.close()


def blocks(page: str) -> dict:
    found = re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', page, re.DOTALL)
    return {block_id: json.loads(body) for block_id, body in found}


def tensor(value: dict) -> np.ndarray:
    dtype = {"float32": "<f4", "float16": "<f2"}[value["dtype"]]
    return np.frombuffer(base64.b64decode(value["base64"]), dtype).reshape(value["shape"])


def test_the_page_holds_every_part_and_fetches_nothing(explorer, tmp_path):
    page = aw.to_html(explorer, tmp_path / "explore.html")
    assert (tmp_path / "explore.html").read_text(encoding="utf-8") == page == explorer.to_html()
    assert not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)\s*=", page, re.IGNORECASE)
    assert not re.search(r"https?://", page.replace("http://www.w3.org", ""))  # no CDN, no fonts, no data URL
    assert "URL.createObjectURL" in page and "import(url)" in page  # the bundle loads from a blob:
    data = blocks(page)
    assert list(data) == ["aw-state", "aw-bundle", "aw-parts"]
    assert page.count("</script") == 4  # the page's own closing tags: nothing from the data closes a block
    state, parts = data["aw-state"], data["aw-parts"]
    assert state["parts"] == explorer.parts and state["tokens"] == explorer.tokens and state["selected_target"] == 1
    assert list(parts) == list(explorer.views) == ["tokens", "heads", "graph", "flow"]
    for name, view in explorer.views.items():  # each part carries its widget's tokens and linked selection
        part = parts[name]["state"]
        assert part["tokens"] == view.tokens, name
        assert {k: part[k] for k in LINKED} == {k: getattr(view, k) for k in LINKED}, name


def test_every_computed_tensor_is_in_the_page(explorer):
    parts = blocks(explorer.to_html())["aw-parts"]
    views = explorer.views
    np.testing.assert_array_equal(tensor(parts["tokens"]["state"]["scores"]), views["tokens"].scores)
    grid = views["heads"]
    np.testing.assert_array_equal(tensor(parts["heads"]["state"]["contributions"]), grid.contributions)
    rows = parts["heads"]["extra"]["rows"]  # every target row the kernel computed, for the page to answer with
    assert sorted(rows) == sorted(str(r) for r in grid.computed_rows()) and {"0", "1"} <= set(rows)
    for r, res in grid.computed_rows().items():
        np.testing.assert_array_equal(tensor(rows[str(r)]["contributions"]), res.contributions)
    flow = views["flow"]
    np.testing.assert_array_equal(tensor(parts["flow"]["state"]["values"]), flow.values)
    assert parts["flow"]["extra"]["columns"], "the flow's computed columns"
    graph = parts["graph"]["state"]
    assert graph["node_ids"] == views["graph"].node_ids and graph["static_page"] is True
    assert parts["tokens"]["extra"] is None and parts["graph"]["extra"] is None


def test_layout_mode_is_the_one_option(explorer):
    assert blocks(aw.to_html(explorer, layout_mode="tabs"))["aw-state"]["layout_mode"] == "tabs"
    with pytest.raises(AttrWidgetsError, match=r"for an Explorer it accepts \['layout_mode'\]"):
        aw.to_html(explorer, selected_target=2)
    with pytest.raises(AttrWidgetsError, match="layout_mode"):
        aw.to_html(explorer, layout_mode="sideways")
