"""`attrwidgets graph` on a tiny model folder: viewer JSON, HTML page, saved full graph, bad input."""

from __future__ import annotations

import json
import re

import pytest

import attrwidgets as aw
from attrwidgets.cli import main
from tests.core.test_cli import tiny_folder  # noqa: F401  (fixture)


def test_graph_writes_viewer_json_and_saves_the_full_graph(tiny_folder, tmp_path, capsys):  # noqa: F811
    out, full = tmp_path / "g.json", tmp_path / "full.json"
    assert main(["graph", "The capital of France is", "--model", tiny_folder, "-o", str(out),
                 "--save", str(full), "--target", " Paris", "--target", " Paris - the"]) == 0
    viewer = json.loads(out.read_text())
    assert {"metadata", "qParams", "nodes", "links"} <= set(viewer)
    ids = {n["node_id"] for n in viewer["nodes"]}
    assert all(link["source"] in ids and link["target"] in ids for link in viewer["links"])
    assert sum(n["feature_type"] == "logit" for n in viewer["nodes"]) == 2
    graph = aw.load_graph(full)
    assert graph.nodes.mask("logit").sum() == 2 and "replacement score" in capsys.readouterr().out


def test_graph_html_is_a_standalone_page(tiny_folder, tmp_path):  # noqa: F811
    page = tmp_path / "g.html"
    assert main(["graph", "The capital of France is", "--model", tiny_folder, "-o", str(page)]) == 0
    text = page.read_text()
    assert not re.search(r"<script[^>]*\bsrc\s*=|https?://", text.replace("http://www.w3.org", ""), re.IGNORECASE)
    block = re.search(r'<script type="application/json" id="aw-state">(.*?)</script>', text, re.DOTALL).group(1)
    state = json.loads(block)  # the graph itself is in the page: the prompt's tokens and the logit nodes
    assert "".join(t["clean"] for t in state["tokens"]).endswith("The capital of France is")
    logits = [node for node in state["node_ids"] if node.startswith(f"{state['n_layers'] + 1}_")]
    assert logits and all(node.endswith(f"_{len(state['tokens']) - 1}") for node in logits)
    assert state["static_page"] is True


@pytest.mark.parametrize("args,message", [
    (["graph", "  "], "empty"),
    (["graph", "The cat", "-o", "x.txt"], ".json"),
    (["graph", "The cat", "--logit-prob", "2"], "(0, 1]"),
    (["graph", "The cat", "--transcoder", "/nonexistent/folder"], "/nonexistent/folder"),
])
def test_graph_bad_input_exits_with_a_message(tiny_folder, capsys, args, message):  # noqa: F811
    assert main([*args, "--model", tiny_folder]) == 2
    assert message in capsys.readouterr().err
