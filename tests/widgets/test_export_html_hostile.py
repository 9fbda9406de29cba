"""aw.to_html of every view with hostile token text: it shows literally (the page's state holds it exactly and
the front-end renders with textContent only, test_export_html.py), runs nothing (no markup, no way out of
the data block) and the page makes no request."""

from __future__ import annotations

import dataclasses
import functools
import json
import re

import pytest

import attrwidgets as aw
from attrwidgets.testing import tiny_handle, tiny_masked_lm, toy_graph

pytestmark = pytest.mark.usefixtures("built_bundle")

HOSTILE = ["<img src=x onerror=alert(1)>", "</script><script>alert(1)</script>", "\u202eevil\u202c <!--",
           "x" * 10_000 + "<b>"]


@functools.cache
def results() -> dict:
    h = tiny_handle("llama")
    return {
        "TokenMatrix": aw.attribute(h, "the cat sat on", method="saliency", max_new_tokens=2, progress=False),
        "HeadGrid": aw.head_contributions(h, "the cat sat on"),
        "LayerFlow": aw.lig(h, "the cat sat on", layers=[0], n_steps=2),
        "DiffusionTimeline": aw.dlig(tiny_masked_lm(seed=0), "the cat sat on", layer="block 0", gen_length=2,
                                     steps=1, n_steps=2, progress=False),
        "GraphView": toy_graph(seed=2),
    }


def _hostile(result):
    """The same result with tokens 0..3 replaced by hostile text."""
    if isinstance(result, aw.Graph):
        result = toy_graph(seed=2)  # a fresh one: the cached graph stays benign
        tokens = list(result.tokens)
        tokens[: len(HOSTILE)] = HOSTILE[: len(tokens)]
        result.tokens = tokens
        return result
    tokens = [dataclasses.replace(t, text=text, clean=text) for t, text in zip(result.tokens, HOSTILE)]
    return dataclasses.replace(result, tokens=tokens + list(result.tokens[len(tokens):]))


def _blocks(page: str) -> list[str]:
    return re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', page, re.DOTALL)


@pytest.mark.parametrize("view", ["TokenMatrix", "HeadGrid", "LayerFlow", "DiffusionTimeline", "GraphView"])
def test_hostile_token_text_stays_text_and_the_page_makes_no_request(view, tmp_path):
    benign = aw.to_html(results()[view])
    page = aw.to_html(_hostile(results()[view]), tmp_path / "page.html")
    # nothing escapes the data blocks: as many closing script tags as the benign page, no markup from data
    assert page.count("</script") == benign.count("</script")
    assert page.count("<!--") == benign.count("<!--")
    for text in HOSTILE:
        assert text not in page
    assert "<img" not in page and "<b>" not in page
    # no request: no remote script, stylesheet, image or URL anywhere
    assert not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)\s*=", page, re.IGNORECASE)
    assert not re.search(r"https?://", page.replace("http://www.w3.org", ""))
    # ...and the text comes back exactly when the page's own JSON is parsed
    decoded = json.dumps([json.loads(body) for _, body in _blocks(page)], ensure_ascii=False)
    for text in HOSTILE[:3]:
        assert json.dumps(text, ensure_ascii=False)[1:-1] in decoded, (view, text)
    assert "x" * 10_000 in decoded
