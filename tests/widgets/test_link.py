"""aw.link (widgets/linking.py, docs/linking.md): separate views answer each other kernel-side, through
absolute positions."""

from __future__ import annotations

import numpy as np
import pytest

import attrwidgets as aw
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import tiny_handle

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def views():
    source = aw.Source(tiny_handle("llama"), PROMPT, max_new_tokens=3)
    made = {"matrix": aw.TokenMatrix(source=source, method="saliency"), "grid": aw.HeadGrid(source=source),
            "flow": aw.LayerFlow(source=source, n_steps=2, granularity="att"), "graph": aw.GraphView(source=source, node_threshold=0.8, edge_threshold=0.98)}
    for view in made.values():
        view.wait(120)
    yield source, made
    for view in made.values():
        view.close()


def test_a_target_moves_to_the_same_position_in_every_view(views):
    source, v = views
    link = aw.link(*v.values())
    v["matrix"].selected_target = 1
    position = source.target_positions[1]
    assert v["grid"].selected_target == 1  # the same targets: the same row
    assert v["flow"].target_positions[v["flow"].selected_target] == position  # another row, the same position
    assert v["graph"].selected_target == 1  # a graph on a source has its rows: the graph of that target's prefix
    v["graph"].wait(60)
    assert len(v["graph"].graph.token_ids) == len(v["graph"].tokens) == position and v["graph"].error == ""
    v["flow"].selected_target = v["flow"].target_positions.index(2)  # a prompt position: no target of the others
    assert v["matrix"].selected_target == -1 and v["grid"].selected_target == -1
    assert v["graph"].selected_target == -1  # the prompt's own graph again
    v["graph"].wait(60)
    assert len(v["graph"].graph.token_ids) == source.n_prompt
    link.unlink()


def test_positions_layers_and_heads_are_shared_and_out_of_range_is_none(views):
    source, v = views
    link = aw.link(*v.values())
    last = len(source.tokens) - 1  # a generated token: the graph shows the prompt alone
    v["matrix"].selected_position = last
    assert v["grid"].selected_position == v["flow"].selected_position == last and v["graph"].selected_position == -1
    v["grid"].selected_layer, v["grid"].selected_head = 1, 1
    assert (v["flow"].selected_layer, v["flow"].selected_head, v["flow"].sum_heads) == (1, 1, False)
    assert v["matrix"].selected_head == 1  # kept for the views it links to
    link.unlink()
    v["grid"].selected_head = 0
    assert v["flow"].selected_head == 1  # unlinked


def test_a_graph_node_selects_its_position_layer_and_head(views):
    _, v = views
    graph = v["graph"]
    for view in v.values():  # a link passes changes on: start from nothing selected
        view.selected_layer = view.selected_head = view.selected_position = -1
    link = aw.link(*v.values())
    kinds = list(graph.kinds)
    data = np.asarray(graph.node_data)
    heads = np.flatnonzero(data[0] == kinds.index("attention"))
    assert heads.size, "the component graph keeps head nodes"
    node = heads[0]
    layer, position, head = (int(data[r, node]) for r in (1, 2, 3))
    graph.selected_node = graph.node_ids[node]
    assert (graph.selected_layer, graph.selected_head, graph.selected_position) == (layer, head, position)
    assert (v["grid"].selected_layer, v["grid"].selected_head, v["grid"].selected_position) == (layer, head, position)
    assert v["flow"].selected_position == v["matrix"].selected_position == position
    link.unlink()


def test_bad_links_are_clear_errors(views):
    source, v = views
    with pytest.raises(AttrWidgetsError, match="two or more views"):
        aw.link(v["matrix"])
    with pytest.raises(AttrWidgetsError, match="links attrwidgets views"):
        aw.link(v["matrix"], "grid")
    with pytest.raises(AttrWidgetsError, match="same view twice"):
        aw.link(v["matrix"], v["matrix"])
    other = aw.HeadGrid(model=source.handle, prompt="A completely different prompt", max_new_tokens=1).wait(60)
    with pytest.raises(AttrWidgetsError, match="show different token sequences"):
        aw.link(v["matrix"], other)
    other.close()


def test_linking_starts_from_the_first_views_selection(views):
    _, v = views
    v["grid"].selected_layer, v["flow"].selected_layer = 0, 1
    link = aw.link(v["grid"], v["flow"])
    assert v["flow"].selected_layer == 0
    link.unlink()
