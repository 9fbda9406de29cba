"""The GraphView's grouped modes: a pruned graph with some of its nodes merged, for a first look.

A component graph keeps every head as a node of its own, so even pruned it is dozens of heads per layer band.
Grouping merges what a first look does not need apart, after pruning (the pruning itself is unchanged):
- "heads": every head node of one layer at one position becomes one node (kind "attention", feature -1);
- "layers": every node inside one layer at one position (heads, MLP, features, errors) becomes one node (kind
  "layer").
Tokens and logits are never merged, and a group of one node stays that node (its id, label and head). The edges
between two groups are summed, signs included; edges inside a group are dropped (docs/methods/graph.md: a graph's
edges are direct effects, so the sum is the group's direct effect on the other group).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import traitlets

from attrwidgets.widgets.graph_payload import NODE_COLUMNS, Payload

GROUP_MODES = ("none", "heads", "layers")
MERGED = "layer"  # the kind of a "layers" group: appended to the core's kinds in the view's `kinds`


def check_group(value: object) -> str:
    """A group mode, or a TraitError naming the modes."""
    if value not in GROUP_MODES:
        raise traitlets.TraitError(f"group must be one of {', '.join(map(repr, GROUP_MODES))} ('none': every node; "
                                   f"'heads': the heads of a layer at a position merged; 'layers': every node of a "
                                   f"layer at a position merged), got {value!r}.")
    return str(value)


def _group_of(node_data: np.ndarray, kinds: list[str], mode: str) -> list[tuple]:
    """For each node, the key of its group: (layer, position) for a mergeable node, else ("own", i)."""
    row = {name: node_data[NODE_COLUMNS.index(name)] for name in ("kind", "layer", "position")}
    mergeable = {"heads": {"attention"}, "layers": {"feature", "error", "attention", "mlp"}}[mode]
    keys = []
    for i in range(node_data.shape[1]):
        kind = kinds[int(row["kind"][i])]
        keys.append((int(row["layer"][i]), int(row["position"][i])) if kind in mergeable else ("own", i))
    return keys


def group_payload(shown: Payload, mode: str, kinds: list[str]) -> Payload:
    """`shown` with its nodes merged by `mode` (GROUP_MODES); "none" returns it as it is. `kinds`: the view's
    kind names (the codes in node_data's kind row), MERGED among them."""
    mode = check_group(mode)
    n = shown.node_data.shape[1]
    if mode == "none" or n == 0:
        return shown
    keys = _group_of(shown.node_data, kinds, mode)
    order = list(dict.fromkeys(keys))  # groups in the order of their first node
    number = {k: g for g, k in enumerate(order)}
    group = np.array([number[k] for k in keys], dtype=np.int64)
    members = [np.flatnonzero(group == g) for g in range(len(order))]
    columns = {name: shown.node_data[r] for r, name in enumerate(NODE_COLUMNS)}
    data = np.empty((len(NODE_COLUMNS), len(order)), np.float32)
    ids, labels = [], []
    merged_kind = kinds.index("attention" if mode == "heads" else MERGED)
    for g, where in enumerate(members):
        if len(where) == 1:  # a group of one is that node
            (i,) = where
            data[:, g] = shown.node_data[:, i]
            ids.append(shown.node_ids[i])
            labels.append(shown.node_labels[i])
            continue
        layer, position = order[g]
        data[:, g] = [merged_kind, layer, position, -1, -1, np.nan, columns["influence"][where].sum(),
                      columns["cumulative"][where].min(), columns["members"][where].sum()]
        what = "heads" if mode == "heads" else "nodes"
        ids.append(f"A{layer}_all_{position}" if mode == "heads" else f"L{layer}_{position}")
        labels.append(f"{len(where)} {what} L{layer}")
    edges = _summed_edges(shown.edges, group, len(order))
    summary = {**shown.summary, "shown_nodes": len(order), "shown_edges": int(edges.shape[1]), "group": mode,
               "ungrouped_nodes": n, "ungrouped_edges": int(shown.edges.shape[1])}
    return replace(shown, node_data=data, edges=edges, node_ids=ids, node_labels=labels, summary=summary)


def _summed_edges(edges: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """(3, e) edges between nodes -> (3, e') edges between their groups, weights summed, inside-group dropped,
    strongest first."""
    src, dst = group[edges[0].astype(np.int64)], group[edges[1].astype(np.int64)]
    between = src != dst
    pair = src[between] * n_groups + dst[between]
    pairs, inverse = np.unique(pair, return_inverse=True)
    weight = np.zeros(pairs.size, np.float64)
    np.add.at(weight, inverse, edges[2][between].astype(np.float64))
    order = np.argsort(-np.abs(weight), kind="stable")
    pairs, weight = pairs[order], weight[order]
    return np.stack([pairs // n_groups, pairs % n_groups, weight]).astype(np.float32)
