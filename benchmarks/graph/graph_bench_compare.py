"""The adjacency comparison of benchmarks/graph/bench_graph.py: attrwidgets' graph against circuit-tracer's, nodes
matched by (kind, layer, position, feature). Both are .npz files with `adjacency` (rows targets, columns
sources) and node columns node_kind / node_layer / node_position / node_feature / node_activation (the layout
benchmarks/external/ct_runner.py writes; graph_bench_runs.graph_child writes ours the same way).

    python benchmarks/graph/graph_bench_compare.py OURS.npz CT.npz     # prints one JSON line
"""

from __future__ import annotations

import json
import sys

import numpy as np


def _keys(z) -> list[tuple]:
    return list(
        zip(
            z["node_kind"].tolist(),
            z["node_layer"].tolist(),
            z["node_position"].tolist(),
            z["node_feature"].tolist(),
        )
    )


def compare_graphs(ours_npz: str, ct_npz: str, block: int = 2048) -> dict:
    """Largest |A_ours - A_ct| over the nodes both graphs have (matched by (kind, layer, position, feature));
    what only one side has is counted, and the largest |entry| of its columns reported (circuit-tracer's
    position-0 error nodes must be all zero)."""
    a = np.load(ours_npz, allow_pickle=False)
    b = np.load(ct_npz, allow_pickle=False)
    ka, kb = _keys(a), _keys(b)
    index_b = {k: i for i, k in enumerate(kb)}
    ia = np.array([i for i, k in enumerate(ka) if k in index_b], dtype=np.int64)
    ib = np.array([index_b[ka[i]] for i in ia], dtype=np.int64)
    A, B = a["adjacency"], b["adjacency"]
    only_a = np.setdiff1d(np.arange(len(ka)), ia)
    only_b = np.setdiff1d(np.arange(len(kb)), ib)

    def only_summary(keys, idx, M):
        kinds: dict[str, int] = {}
        for i in idx:
            kinds[keys[i][0]] = kinds.get(keys[i][0], 0) + 1
        pos0 = np.array([i for i in idx if keys[i][0] == "error" and keys[i][2] == 0], dtype=np.int64)
        rest = np.setdiff1d(idx, pos0)
        return {
            "count": len(idx),
            "by_kind": kinds,
            "position0_errors": len(pos0),
            "position0_errors_max_abs_column": float(np.abs(M[:, pos0]).max()) if len(pos0) else 0.0,
            "others_max_abs_column": float(np.abs(M[:, rest]).max()) if len(rest) else 0.0,
        }

    max_diff = max_ref = max_ours = 0.0
    worst = None
    for s in range(0, len(ia), block):
        ra, rb = ia[s : s + block], ib[s : s + block]
        x = A[np.ix_(ra, ia)]
        y = B[np.ix_(rb, ib)]
        d = np.abs(x - y)
        m = float(d.max()) if d.size else 0.0
        if m > max_diff:
            r, c = np.unravel_index(int(d.argmax()), d.shape)
            max_diff, worst = (
                m,
                {
                    "target": list(map(_plain, ka[ra[r]])),
                    "source": list(map(_plain, ka[ia[c]])),
                    "ours": float(x[r, c]),
                    "ct": float(y[r, c]),
                },
            )
        max_ref = max(max_ref, float(np.abs(y).max()) if y.size else 0.0)
        max_ours = max(max_ours, float(np.abs(x).max()) if x.size else 0.0)
    feats_a = a["node_kind"][ia] == "feature"
    act_diff = np.abs(a["node_activation"][ia][feats_a] - b["node_activation"][ib][feats_a])
    n_feat_a = int(np.sum(a["node_kind"] == "feature"))
    n_feat_b = int(np.sum(b["node_kind"] == "feature"))
    return {
        "matched_nodes": len(ia),
        "nodes_ours": len(ka),
        "nodes_ct": len(kb),
        "features_ours": n_feat_a,
        "features_ct": n_feat_b,
        "features_matched": int(feats_a.sum()),
        "only_ours": only_summary(ka, only_a, A),
        "only_ct": only_summary(kb, only_b, B),
        "max_abs_diff": max_diff,
        "max_abs_ct": max_ref,
        "max_abs_ours": max_ours,
        "rel_to_max": max_diff / max(max_ref, 1e-30),
        "worst_entry": worst,
        "max_activation_diff": float(act_diff.max()) if act_diff.size else 0.0,
        "same_logits": sorted(b["node_feature"][b["node_kind"] == "logit"].tolist())
        == sorted(a["node_feature"][a["node_kind"] == "logit"].tolist()),
    }


def _plain(v):
    return v.item() if hasattr(v, "item") else v


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: graph_bench_compare.py OURS.npz CT.npz")
    print(json.dumps(compare_graphs(sys.argv[1], sys.argv[2])))
