"""GraphView: traits and their wire form (only the pruned graph crosses, as binary buffers), re-pruning on the
thresholds, selection and pins, export with the pins, the target box's syntax, rebuilding for other targets
through a fake engine (cache, last request wins, errors in the view, nothing lost), and the front-end's path
highlighting run in node against the same edges."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import ipywidgets
import numpy as np
import pytest
import traitlets
from ipywidgets.widgets.widget import _put_buffers, _remove_buffers

from attrwidgets.core.graph.graph import KINDS
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import toy_graph
from attrwidgets.widgets.graph_payload import GRAPH_CACHE, NODE_COLUMNS, parse_target, target_text
from attrwidgets.widgets.graph_view import GraphView
from attrwidgets.widgets.serialization import deserialize_tensor

from .graph_support import ancestors, descendants, graph_with_engine
from .support import wait_until

ROOT = Path(__file__).resolve().parents[2]
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"


def wire(widget) -> tuple[dict, list]:
    """The state as the browser receives it, tensors decoded; and the binary buffers themselves."""
    state, paths, buffers = _remove_buffers(widget.get_state())
    assert all(isinstance(b, (memoryview, bytes, bytearray)) for b in buffers)
    json.dumps(state, allow_nan=False)  # the JSON part is strict JSON
    _put_buffers(state, paths, buffers)
    for key in ("node_data", "edges"):
        assert state[key]["dtype"] == "float32"
        state[key] = deserialize_tensor(state[key])
    return state, buffers


def test_only_the_pruned_graph_crosses_as_buffers():
    g = toy_graph(0)
    view = GraphView(g).wait(10)
    state, buffers = wire(view)
    pruned = g.prune(0.8, 0.98)
    k, e = len(pruned.node_index), pruned.edge_weight.size
    assert 0 < k < len(g.nodes) and e > 0
    assert sorted(b.nbytes if isinstance(b, memoryview) else len(b) for b in buffers) == sorted([4 * 3 * e,
                                                                                                 4 * len(NODE_COLUMNS) * k])
    nodes = state["node_data"]
    # the core's kinds, then the kind of a grouped mode's merged layer node (graph_group.MERGED)
    assert state["node_columns"] == list(NODE_COLUMNS) and state["kinds"] == [*KINDS, "layer"]
    idx = pruned.node_index
    for row, name in enumerate(NODE_COLUMNS[:5]):
        np.testing.assert_array_equal(nodes[row], getattr(g.nodes, name)[idx].astype(np.float32))
    np.testing.assert_array_equal(nodes[5], g.nodes.activation[idx])  # NaN where a node has no activation
    np.testing.assert_array_equal(nodes[6], pruned.influence)
    np.testing.assert_array_equal(nodes[7], pruned.cumulative)
    np.testing.assert_array_equal(state["edges"], np.stack([pruned.edge_source, pruned.edge_target, pruned.edge_weight]))
    assert state["node_ids"] == pruned.node_ids and [t["clean"] for t in state["tokens"]] == g.tokens and state["n_layers"] == 3
    assert state["node_labels"] == g.labels(idx)  # the labeler's, fetched on the worker
    assert state["node_labels"][0].startswith("feature L")
    s = state["summary"]
    assert (s["n_nodes"], s["n_edges"], s["shown_nodes"], s["shown_edges"]) == (
        len(g.nodes), int(np.count_nonzero(g.adjacency.numpy())), k, e)
    assert s["replacement_score"] == pytest.approx(g.replacement_score)
    assert s["completeness_score"] == pytest.approx(g.completeness_score)
    assert not view.can_rebuild and view.error == "" and not view.busy
    assert view.graph is g and view.pruned is pruned
    assert "of 43 nodes" in repr(view)
    view.close()


def test_sparse_adjacency_and_component_graphs():
    g = toy_graph(1, components=True, sparse=True)
    view = GraphView(g, node_threshold=0.9).wait(10)
    state, _ = wire(view)
    assert state["summary"]["n_edges"] == g.adjacency.nnz
    kinds = {KINDS[int(c)] for c in state["node_data"][0]}
    assert {"attention", "mlp", "token", "logit"} >= kinds and "logit" in kinds
    view.close()


def test_thresholds_reprune_on_the_worker_and_come_back_from_the_cache():
    g = toy_graph(2, n_layers=4, n_pos=6)
    view = GraphView(g).wait(10)
    calls = []
    original = g.prune
    g.prune = lambda *a, **kw: calls.append((a, kw)) or original(*a, **kw)
    view.node_threshold = 0.4
    view.wait(10)
    small = original(0.4, 0.98)
    assert view.node_ids == small.node_ids and len(calls) == 1
    np.testing.assert_array_equal(view.edges[2], small.edge_weight)
    view.edge_threshold = 0.5
    view.wait(10)
    assert view.edges.shape[1] == original(0.4, 0.5).edge_weight.size < small.edge_weight.size
    view.edge_threshold, view.node_threshold = 0.98, 0.8  # both seen before: no prune, no worker
    view.wait(10)
    assert len(calls) == 2 and view.node_ids == original(0.8, 0.98).node_ids
    for bad in (0, -0.1, 1.5):
        with pytest.raises(traitlets.TraitError, match="node_threshold must be in \\(0, 1\\]"):
            view.node_threshold = bad
    assert view.node_threshold == 0.8
    view.close()


def test_bad_construction_says_what_to_do():
    with pytest.raises(AttrWidgetsError, match="GraphView expects a Graph"):
        GraphView("not a graph")
    with pytest.raises(TypeError, match="Did you mean 'node_threshold'"):
        GraphView(toy_graph(0), node_treshold=0.5)
    with pytest.raises(traitlets.TraitError, match="edge_threshold must be in"):
        GraphView(toy_graph(0), edge_threshold=2)


def test_selected_node_and_selected_logit_move_together():
    g = toy_graph(0, n_logits=3)
    view = GraphView(g).wait(10)
    logits = [i for i, k in zip(view.node_ids, view.node_data[0]) if KINDS[int(k)] == "logit"]
    assert len(logits) == 3
    view.selected_logit = 2
    assert view.selected_node == logits[2]
    view.selected_node = logits[0]
    assert view.selected_logit == 0
    view.selected_node = view.node_ids[0]  # a feature: no logit selected
    assert view.selected_logit == -1 and view.selected_node == view.node_ids[0]
    with pytest.raises(traitlets.TraitError, match="selected_logit must be -1"):
        view.selected_logit = 3
    other = GraphView(g, selected_node=logits[1]).wait(10)
    assert other.selected_logit == 1
    ipywidgets.link((view, "selected_logit"), (other, "selected_logit"))
    view.selected_logit = 2
    assert other.selected_node == logits[2]
    view.close()
    other.close()


def test_pins_are_kept_by_pruning_and_exported(tmp_path):
    g = toy_graph(3, n_layers=4, n_pos=6)
    view = GraphView(g, node_threshold=0.3).wait(10)
    shown = set(view.node_ids)
    hidden = [i for i in g.nodes.node_id if i not in shown and i.split("_")[0].isdigit() and "-1" not in i][:2]
    assert len(hidden) == 2, "the toy graph should prune some features at 0.3"
    view.pinned = [hidden[0], hidden[1], hidden[0]]
    assert view.pinned == hidden  # once each, in pin order
    view.wait(10)
    assert set(hidden) <= set(view.node_ids)  # pinned nodes stay in the pruned graph
    data = view.to_viewer_json(tmp_path / "graph.json")
    assert data["qParams"]["pinnedIds"] == hidden
    written = json.loads((tmp_path / "graph.json").read_text())
    assert {n["node_id"] for n in written["nodes"]} >= set(hidden)
    assert written["metadata"]["node_threshold"] == pytest.approx(0.3)
    view.pinned = [*hidden, "9_9_9"]  # not a node of this graph: left out of the export, with a warning
    view.wait(10)
    with pytest.warns(UserWarning, match="9_9_9"):
        view.to_viewer_json()
    view.close()


@pytest.mark.parametrize("text, key", [
    ("", ()), ("   ", ()), ("#1234", (1234,)), (" Paris", (" Paris",)), ('" Paris"', (" Paris",)),
    ("Paris - London", (("Paris", "London"),)), ('" Paris" - " London"', ((" Paris", " London"),)),
    ("#12 - #34", ((12, 34),)), ('" - "', (" - ",)), ("-", ("-",)), ("a-b", ("a-b",)),
])
def test_target_syntax(text, key):
    assert parse_target(text) == key
    assert parse_target(target_text(key)) == key


@pytest.mark.parametrize("text", ['"abc', '""', "Paris - ", '"a\\q"'])
def test_bad_target_text_is_an_error_that_says_the_syntax(text):
    if text == "Paris - ":
        assert parse_target(text) == ("Paris - ",)  # no second side: the literal token
        return
    with pytest.raises(AttrWidgetsError, match="vocab id"):
        parse_target(text)


def test_target_rebuilds_through_the_engine_and_is_cached():
    g, engine = graph_with_engine(0, n_logits=3)
    view = GraphView(g).wait(10)
    assert view.can_rebuild and view.shown_target == ""
    view.target = "#5"
    view.wait(10)
    assert engine.calls == [(5,)] and view.shown_target == "#5" and view.error == ""
    rebuilt = view.graph
    assert rebuilt is not g and rebuilt.n_logits == 1
    assert view.node_ids == rebuilt.prune(0.8, 0.98).node_ids
    view.target = ""  # back to the first graph: no engine call, shown at once
    assert view.shown_target == "" and view.graph is g
    view.target = "#5"
    assert view.shown_target == "#5" and view.graph is rebuilt and engine.calls == [(5,)]
    view.target = "Paris - London"
    view.wait(10)
    assert engine.calls[-1] == (("Paris", "London"),) and view.shown_target == '"Paris" - "London"'
    view.close()


def test_rebuild_cache_is_small_and_the_shown_graph_stays():
    g, engine = graph_with_engine(0)
    view = GraphView(g).wait(10)
    last = GRAPH_CACHE + 3
    for t in range(1, last + 1):
        view.target = f"#{t}"
        view.wait(10)
    assert len(engine.calls) == last
    view.target = f"#{last}"  # the shown one and the last few are cached; the first rebuilt ones are gone
    view.target = "#1"
    view.wait(10)
    assert engine.calls[-1] == (1,) and len(engine.calls) == last + 1 and view.shown_target == "#1"
    view.target = ""
    assert view.graph is g  # the first graph is never evicted
    view.close()


def test_last_request_wins_the_superseded_rebuild_stops_and_finished_ones_stay():
    gate = threading.Event()
    g, engine = graph_with_engine(0, delays={(1,): 0.0}, gate=gate)
    view = GraphView(g).wait(10)
    view.target = "#2"
    view.wait(10)
    view.target = "#1"  # waits on the gate
    wait_until(lambda: engine.calls == [(2,), (1,)])
    assert view.busy and view.shown_target == "#2"  # the previous graph stays shown meanwhile
    view.target = "#3"
    gate.set()
    view.wait(10)
    assert view.shown_target == "#3" and not view.busy and view.error == ""  # no "cancelled" banner
    assert engine.calls == [(2,), (1,), (3,)] and engine.cancelled == [(1,)]
    view.target = "#2"  # finished before: from the cache, at once
    assert view.shown_target == "#2" and not view.busy and len(engine.calls) == 3
    view.target = "#1"  # superseded, so never finished: computed now
    view.wait(10)
    assert view.shown_target == "#1" and engine.calls[-1] == (1,)
    view.close()


def test_errors_show_in_the_view_which_keeps_working():
    g, _ = graph_with_engine(0, fail={(7,): AttrWidgetsError("Token 7 is not in the vocabulary.")})
    view = GraphView(g).wait(10)
    before = list(view.node_ids)
    view.target = "#7"
    view.wait(10)
    assert view.error == "Token 7 is not in the vocabulary." and not view.busy
    assert view.node_ids == before and view.shown_target == ""  # the previous graph is still shown
    view.node_threshold = 0.5  # still the requested target #7: fails again, says so
    view.wait(10)
    assert "vocabulary" in view.error
    view.target = ""
    view.wait(10)
    assert view.error == "" and view.node_ids == g.prune(0.5, 0.98).node_ids
    view.target = '"unclosed'
    assert "quoted string" in view.error and view.shown_target == ""
    view.target = "#3"
    view.wait(10)
    assert view.error == "" and view.shown_target == "#3"
    view.close()


def test_no_engine_says_why_and_labels_failing_is_not_fatal():
    g = toy_graph(0)
    view = GraphView(g).wait(10)
    view.target = "#5"
    view.wait(10)
    assert not view.can_rebuild and "model" in view.error and view.shown_target == ""
    view.close()

    g = toy_graph(0)
    g.labeler = lambda idx: (_ for _ in ()).throw(RuntimeError("labeler down"))
    view = GraphView(g).wait(10)
    assert "labels: RuntimeError: labeler down" in view.error
    assert len(view.node_ids) > 0 and all(isinstance(s, str) for s in view.node_labels)
    view.close()


def big_graph():
    """A toy graph whose pruned form (0.95 / 0.99) keeps ~5,700 edges among ~350 nodes."""
    return toy_graph(0, n_layers=8, n_pos=16, features_per_site=6, density=0.3)


def test_prune_and_send_time_for_a_5000_edge_graph(capsys):
    g = big_graph()
    _ = g.influence  # the graph's own one-off cost (the series), not the view's
    t0 = time.perf_counter()
    view = GraphView(g, node_threshold=0.95, edge_threshold=0.99)  # prune + payload, synchronously
    t1 = time.perf_counter()
    state, _, buffers = _remove_buffers(view.get_state())  # what ipywidgets does before sending
    t2 = time.perf_counter()
    view.wait(30)
    t3 = time.perf_counter()
    view.edge_threshold = 0.98  # a slider move: re-prune on the worker, then the new traits
    view.wait(30)
    t4 = time.perf_counter()
    e = int(state["summary"]["shown_edges"])
    with capsys.disabled():
        print(f"\nGraphView: graph {len(g.nodes)} nodes / {view.summary['n_edges']} edges; shown "
              f"{len(state['node_ids'])} nodes / {e} edges; prune+payload {1e3 * (t1 - t0):.1f} ms, state+buffers "
              f"{1e3 * (t2 - t1):.1f} ms ({sum(len(bytes(b)) for b in buffers)} bytes), labels "
              f"{1e3 * (t3 - t2):.1f} ms, re-prune on the worker {1e3 * (t4 - t3):.1f} ms")
    assert 4000 <= e <= 8000 and view.edges.shape[1] < e
    view.close()


# -- the front-end's decoding and path highlighting, in node -------------------------------------------------
NODE_ENTRY = """
import { readFileSync } from "node:fs";
import { decodeGraph, topEdges } from "%(root)s/js/lib/graph_model";
import { pathsThrough } from "%(root)s/js/lib/graph_paths";
const state = JSON.parse(readFileSync(process.argv[2], "utf8"));
const tensor = (t) => ({ buffer: new DataView(Uint8Array.from(Buffer.from(t.base64, "base64")).buffer), dtype: t.dtype, shape: t.shape });
const values = { ...state, node_data: tensor(state.node_data), edges: tensor(state.edges) };
const g = decodeGraph({ get: (k) => values[k] });
const out = [];
for (let i = 0; i < g.n; i++) {
  const p = pathsThrough(g, i);
  out.push({ up: [...p.upstream.keys()].filter((j) => p.upstream[j]), down: [...p.downstream.keys()].filter((j) => p.downstream[j]),
             edges: p.counts.edges, topIn: topEdges(g, i, "in", 3) });
}
console.log(JSON.stringify({ logits: g.logits, out }));
"""


def test_front_end_paths_match_python(tmp_path):
    if shutil.which("node") is None or not ESBUILD.exists():
        pytest.skip("needs node and `npm ci` (node_modules/.bin/esbuild) to run the front-end code")
    from attrwidgets.widgets.html_page import base64_buffers as _base64_buffers

    view = GraphView(toy_graph(4, n_layers=4, n_pos=6)).wait(10)
    (tmp_path / "entry.ts").write_text(NODE_ENTRY % {"root": ROOT.as_posix()})
    subprocess.run([str(ESBUILD), str(tmp_path / "entry.ts"), "--bundle", "--platform=node", "--format=esm",
                    f"--outfile={tmp_path / 'entry.mjs'}"], check=True, capture_output=True)
    (tmp_path / "state.json").write_text(json.dumps(_base64_buffers(view.get_state())))
    out = json.loads(subprocess.run(["node", str(tmp_path / "entry.mjs"), str(tmp_path / "state.json")], check=True,
                                    capture_output=True, text=True).stdout)
    edges = view.edges
    kinds = view.node_data[0]
    assert out["logits"] == [i for i in range(len(kinds)) if KINDS[int(kinds[i])] == "logit"]
    for i, got in enumerate(out["out"]):
        up, down = ancestors(edges, i), descendants(edges, i)
        assert set(got["up"]) == up and set(got["down"]) == down
        on = sum(1 for s, t in edges[:2].T.astype(int) if (s in up and (t in up or t == i)) or
                 ((s in down or s == i) and t in down))
        assert got["edges"] == on
        into = np.flatnonzero(edges[1] == i)
        strongest = into[np.argsort(-np.abs(edges[2][into]), kind="stable")][:3]
        assert np.allclose(np.abs(edges[2][got["topIn"]]), np.abs(edges[2][strongest]))
    assert any(got["up"] and got["down"] for got in out["out"])  # the check saw real paths
    view.close()


def test_real_engine_rebuilds_for_a_clicked_logit(tiny_llama):
    """aw.attribution_graph's engine takes the view's rebuild keywords (targets, progress, cancel)."""
    from attrwidgets.core.graph.attribution import attribution_graph

    g = attribution_graph(tiny_llama, "the cat sat on the mat", progress=False)
    view = GraphView(g).wait(60)
    assert view.can_rebuild and all(view.node_labels) and view.error == ""
    logits = [n for n, k in zip(view.node_ids, view.node_data[0]) if KINDS[int(k)] == "logit"]
    vocab = int(logits[1].split("_")[1])
    view.selected_node = logits[1]
    view.target = f"#{vocab}"  # what a click on that logit writes
    view.wait(60)
    assert view.error == "" and view.shown_target == f"#{vocab}" and view.graph.n_logits == 1
    assert [n for n, k in zip(view.node_ids, view.node_data[0]) if KINDS[int(k)] == "logit"] == [logits[1]]
    assert view.selected_node == logits[1] and view.selected_logit == 0
    view.target = ""
    assert view.graph is g and view.selected_logit == 1
    view.close()


def test_a_component_graph_opens_sparser_than_a_transcoder_graph():
    """Component graphs are far denser (every head and MLP a node): the view's first pruning is tighter for them
    (graph_payload.COMPONENT_THRESHOLDS); a transcoder graph keeps circuit-tracer's; a given threshold wins."""
    import attrwidgets as aw
    from attrwidgets.testing import tiny_handle
    from attrwidgets.widgets.graph_payload import COMPONENT_THRESHOLDS, TRANSCODER_THRESHOLDS

    component = aw.attribution_graph(tiny_handle("llama"), "the cat sat on the mat", progress=False)
    view = GraphView(component)
    assert (view.node_threshold, view.edge_threshold) == tuple(COMPONENT_THRESHOLDS.values())
    assert view.node_ids == component.prune(*COMPONENT_THRESHOLDS.values()).node_ids
    view.close()
    view = GraphView(component, node_threshold=0.8)
    assert (view.node_threshold, view.edge_threshold) == (0.8, COMPONENT_THRESHOLDS["edge_threshold"])
    view.close()
    view = GraphView(toy_graph(seed=1))  # no components: circuit-tracer's defaults
    assert (view.node_threshold, view.edge_threshold) == tuple(TRANSCODER_THRESHOLDS.values())
    view.close()
