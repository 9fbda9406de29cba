"""GraphView, readable and following the selection (issue 17): grouped modes (heads or layers merged, edges summed
between the groups), the selected target row's graph (the prefix before that target's token, on the source's
worker, last request wins, cached), and the same on a transcoder graph."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import traitlets

import attrwidgets as aw
from attrwidgets.core.graph.graph import KINDS
from attrwidgets.testing import tiny_handle, toy_graph
from attrwidgets.widgets.graph_group import GROUP_MODES, group_payload
from attrwidgets.widgets.graph_payload import COMPONENT_GROUP, NODE_COLUMNS
from attrwidgets.widgets.graph_view import GraphView

from .support import wait_until

PROMPT = "The capital of France is"
ALL_KINDS = [*KINDS, "layer"]


def _column(data: np.ndarray, name: str) -> np.ndarray:
    return data[NODE_COLUMNS.index(name)]


def _group_key(data: np.ndarray, i: int, mode: str):
    kind = KINDS[int(_column(data, "kind")[i])]
    merged = {"heads": ("attention",), "layers": ("feature", "error", "attention", "mlp")}[mode]
    return (int(_column(data, "layer")[i]), int(_column(data, "position")[i])) if kind in merged else ("own", i)


# -- grouped modes -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["heads", "layers"])
@pytest.mark.parametrize("seed", range(6))
def test_grouped_edges_sum_to_the_ungrouped_edges_between_the_groups(seed, mode):
    """Property: for every pair of groups, the grouped edge is the sum of the ungrouped edges from one to the other;
    no edge inside a group; every node in exactly one group; tokens and logits never merged."""
    view = GraphView(toy_graph(seed, n_layers=3 + seed % 2, n_pos=4 + seed, components=seed % 3 != 2),
                     node_threshold=0.9, edge_threshold=0.99, group="none").wait(10)
    raw = view._shown
    grouped = group_payload(raw, mode, ALL_KINDS)
    keys = [_group_key(raw.node_data, i, mode) for i in range(len(raw.node_ids))]
    groups = list(dict.fromkeys(keys))
    assert len(grouped.node_ids) == len(groups) == len(set(grouped.node_ids))
    expected: dict[tuple, float] = {}
    for s, t, w in raw.edges.T:
        a, b = groups.index(keys[int(s)]), groups.index(keys[int(t)])
        if a != b:
            expected[(a, b)] = expected.get((a, b), 0.0) + float(w)
    got = {(int(s), int(t)): float(w) for s, t, w in grouped.edges.T}
    assert got.keys() == expected.keys()
    for pair, w in expected.items():
        assert got[pair] == pytest.approx(w, rel=1e-5, abs=1e-6)
    members = _column(grouped.node_data, "members")
    assert members.sum() == len(raw.node_ids)
    for g, key in enumerate(groups):
        inside = [i for i, k in enumerate(keys) if k == key]
        assert _column(grouped.node_data, "influence")[g] == pytest.approx(_column(raw.node_data, "influence")[inside].sum(),
                                                                           rel=1e-5)
        if len(inside) == 1:  # a group of one is that node
            assert grouped.node_ids[g] == raw.node_ids[inside[0]]
            np.testing.assert_array_equal(grouped.node_data[:, g], raw.node_data[:, inside[0]])
    for kind in ("token", "logit"):
        code = KINDS.index(kind)
        assert (_column(grouped.node_data, "kind") == code).sum() == (_column(raw.node_data, "kind") == code).sum()
    view.close()


def test_group_switches_at_once_and_a_merged_node_selects_its_layer_and_position():
    view = GraphView(toy_graph(1, n_layers=3, n_pos=6, components=True), node_threshold=0.95,
                     edge_threshold=0.99).wait(10)
    assert view.group == "none"  # a graph whose metadata does not say "components" merges nothing
    ungrouped = list(view.node_ids)
    view.group = "layers"  # no worker: the shown graph is grouped in the kernel at once
    assert not view.busy and len(view.node_ids) < len(ungrouped)
    assert view.summary["group"] == "layers" and view.summary["ungrouped_nodes"] == len(ungrouped)
    data = view.node_data
    merged = [i for i, n in enumerate(view.node_ids) if n.startswith("L")]
    assert merged, "the toy graph keeps several nodes of some layer at some position"
    i = merged[0]
    assert view.kinds[int(data[0, i])] == "layer" and data[NODE_COLUMNS.index("members"), i] > 1
    view.selected_head = 1
    view.selected_node = view.node_ids[i]
    assert (view.selected_layer, view.selected_position, view.selected_head) == (int(data[1, i]), int(data[2, i]), -1)
    view.group = "heads"
    heads = [i for i, n in enumerate(view.node_ids) if "_all_" in n]
    assert heads and all(view.kinds[int(view.node_data[0, i])] == "attention" for i in heads)
    view.selected_node = view.node_ids[heads[0]]
    assert view.selected_layer == int(view.node_data[1, heads[0]]) and view.selected_head == -1
    assert view.node_labels[heads[0]].endswith(f"heads L{view.selected_layer}")
    view.group = "none"
    assert view.node_ids == ungrouped
    view.close()


def test_an_unknown_group_mode_names_the_modes():
    view = GraphView(toy_graph(0))
    for bad in ("head", "", "LAYERS"):
        with pytest.raises(traitlets.TraitError, match="group must be one of 'none', 'heads', 'layers'"):
            view.group = bad
    assert view.group == "none"
    with pytest.raises(aw.AttrWidgetsError, match="group must be one of"):
        view.check_view({"group": "clusters"})  # what to_html checks
    view.close()
    with pytest.raises(traitlets.TraitError, match="group must be one of"):
        GraphView(toy_graph(0), group="per-layer")
    assert set(GROUP_MODES) == {"none", "heads", "layers"}


def test_a_component_graph_opens_grouped():
    graph = aw.attribution_graph(tiny_handle("llama"), "the cat sat on the mat", progress=False)
    view = GraphView(graph, node_threshold=0.95, edge_threshold=0.99).wait(60)  # a tiny random model: keep more
    assert view.group == COMPONENT_GROUP and view.summary["group"] == COMPONENT_GROUP
    assert view.pruned is not None and len(view.node_ids) < len(view.pruned.node_index)
    view.close()


# -- the selected target row's graph -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def source():
    return aw.Source(tiny_handle("llama"), PROMPT, max_new_tokens=3)


def _count_rebuilds(view) -> list:
    calls = []
    engine = view._cache.base.graph.engine
    original = engine.rebuild

    def counted(graph, **changes):
        calls.append(changes.get("prompt"))
        return original(graph, **changes)

    engine.rebuild = counted
    return calls


def test_a_target_row_shows_the_graph_of_its_prefix_and_coming_back_is_instant(source):
    view = GraphView(source=source, group="none").wait(60)
    assert view.target_positions == source.target_positions and view.selected_target == -1
    ids = source.sequence.input_ids.tolist()
    assert view.graph.token_ids == ids[: source.n_prompt] and len(view.tokens) == source.n_prompt
    calls = _count_rebuilds(view)
    view.selected_target = 0  # the prompt's own next token: the prompt's graph, nothing rebuilt
    view.wait(60)
    assert calls == [] and len(view.tokens) == source.n_prompt
    for row in (2, 1):
        view.selected_target = row
        view.wait(60)
        p = source.target_positions[row]
        assert view.error == "" and view.graph.token_ids == ids[:p] and len(view.tokens) == p
        assert [t["id"] for t in view.tokens] == ids[:p] and view.summary["position"] == p
        assert view.tokens[-1]["segment"] == "generated"  # the source's own token records
        top = next(n for n, k in zip(view.node_ids, view.node_data[0]) if KINDS[int(k)] == "logit")
        assert int(top.split("_")[1]) == ids[p]  # greedy: that token is the prefix's top logit
    assert [len(c) for c in calls] == [source.target_positions[2], source.target_positions[1]]
    view.selected_target = 2  # cached: at once, no rebuild
    assert len(view.tokens) == source.target_positions[2] and len(calls) == 2 and not view.busy
    view.selected_target = -1
    assert len(view.tokens) == source.n_prompt and view.graph is view._cache.base.graph
    view.close()


def test_the_last_selected_row_wins_and_busy_shows_meanwhile(source):
    view = GraphView(source=source).wait(60)
    gate = threading.Event()
    engine = view._cache.base.graph.engine
    original = engine.rebuild

    def slow(graph, **changes):
        gate.wait(20)
        return original(graph, **changes)

    engine.rebuild = slow
    view.selected_target = 1
    wait_until(lambda: view.busy)
    view.selected_target = 2  # supersedes row 1 before it finishes
    gate.set()
    view.wait(60)
    p = source.target_positions[2]
    assert view.selected_target == 2 and len(view.tokens) == p and view.graph.token_ids == \
        source.sequence.input_ids[:p].tolist() and not view.busy and view.error == ""
    view.close()


def test_a_typed_target_is_for_one_row(source):
    view = GraphView(source=source).wait(60)
    view.target = "#5"
    view.wait(60)
    assert view.shown_target == "#5" and view.graph.n_logits == 1
    view.selected_target = 1  # another row: its own graph, the typed target goes
    view.wait(60)
    assert view.target == "" and view.shown_target == "" and len(view.tokens) == source.target_positions[1]
    assert view.graph.n_logits > 1
    view.close()


def test_a_forced_continuation_explains_its_own_token():
    forced = aw.Source(tiny_handle("llama"), PROMPT, target=" Paris")
    view = GraphView(source=forced).wait(60)
    view.selected_target = len(forced.target_positions) - 1
    view.wait(60)
    p = forced.target_positions[-1]
    token = int(forced.sequence.input_ids[p])
    assert view.error == "" and len(view.tokens) == p and view.shown_target == f"#{token}"
    assert [n for n, k in zip(view.node_ids, view.node_data[0]) if KINDS[int(k)] == "logit"] == [f"{view.n_layers + 1}_{token}_{p - 1}"]
    view.close()


def test_a_transcoder_graph_on_a_source_follows_the_rows_too(source):
    from tests.core.graph_reference import random_transcoder

    cfg = source.handle.model.config
    view = GraphView(source=source, transcoder=random_transcoder(cfg.num_hidden_layers, cfg.hidden_size)).wait(60)
    assert view.group == "none" and view.graph.metadata.get("method") != "components"
    assert "feature" in {view.kinds[int(k)] for k in view.node_data[0]} or view.error == ""
    view.selected_target = 2
    view.wait(60)
    assert view.error == "" and len(view.graph.token_ids) == source.target_positions[2]
    assert view.graph.engine.transcoder is not None
    view.close()
    with pytest.raises(aw.AttrWidgetsError, match="goes with source="):
        GraphView(toy_graph(0), transcoder=object())


def test_a_graph_alone_has_no_rows_and_the_old_keyword_still_means_the_logit():
    view = GraphView(toy_graph(0))
    assert view.target_positions == []
    with pytest.raises(traitlets.TraitError):
        view.selected_target = 1
    view.close()
    with pytest.warns(DeprecationWarning, match="selected_target= is renamed selected_logit="):
        view = GraphView(toy_graph(0), selected_target=1)
    assert view.selected_logit == 1 and view.selected_target == -1
    view.close()


def test_a_head_selected_in_a_linked_grid_reaches_the_graph(source):
    graph, grid = GraphView(source=source, group="none").wait(60), aw.HeadGrid(source=source).wait(60)
    link = aw.link(grid, graph)
    grid.selected_layer, grid.selected_head = 1, 1
    assert (graph.selected_layer, graph.selected_head) == (1, 1)
    grid.selected_layer = grid.selected_head = -1
    assert (graph.selected_layer, graph.selected_head) == (-1, -1)
    link.unlink()
    graph.close()
    grid.close()


def test_the_exported_page_names_the_model():
    """A graph records the model it was computed on, and the page's header says it (it said 'model: unknown')."""
    import attrwidgets as aw
    from attrwidgets.testing import tiny_handle

    handle = tiny_handle("llama")
    graph = aw.attribution_graph(handle, "The capital of France is", progress=False)
    assert graph.metadata["model"] == handle.model_id
    page = aw.to_html(graph)
    assert f"model: {handle.model_id}" in page and "model: unknown" not in page
