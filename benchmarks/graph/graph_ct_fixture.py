"""Writes tests/core/data/graph_ct_smollm2.npz: circuit-tracer 0.5's own adjacency rows for a small random PLT on
SmolLM2, the reference of tests/core/test_graph_real.py (as lig_upstream_runner.py does for LIG).

    python benchmarks/graph/graph_ct_fixture.py      # needs the venv of benchmarks/external/ct_env.sh

The PLT is regenerated identically by the test (benchmarks/graph/ct_random_plt.py, seeded; with a skip connection, so
the path through W_skip is checked too); only circuit-tracer's rows are stored: every logit row and a spread of
feature rows, over all columns, keyed by (kind, layer, position, feature).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `benchmarks.*`
from benchmarks.graph.ct_random_plt import default_model_dir, write_random_plt
from benchmarks.harness import BENCHMARKS, REPO

PLT = {"features": 64, "l0": 4.0, "skip": True, "seed": 1}
IDS = [1, 504, 3575, 282, 4649, 314, 7042, 28]  # BOS + "The capital of France is Paris,"
OUT = REPO / "tests" / "core" / "data" / "graph_ct_smollm2.npz"
N_FEATURE_ROWS = 48


def write_plt(folder: str) -> None:
    write_random_plt(folder, default_model_dir(), PLT["features"], PLT["l0"], PLT["skip"], PLT["seed"])


def main() -> int:
    subprocess.run(["bash", str(BENCHMARKS / "external" / "ct_env.sh")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        plt = f"{tmp}/plt"
        write_plt(plt)
        out = f"{tmp}/ct.npz"
        subprocess.run(["/work/venvs/ct/bin/python", str(BENCHMARKS / "external" / "ct_runner.py"), "--transcoder-dir",
                        plt, "--prompt-ids", ",".join(map(str, IDS)), "--out", out, "--threads", "2"],
                       check=True, cwd=REPO)
        z = np.load(out, allow_pickle=False)
        meta = json.loads(Path(out[:-4] + ".json").read_text())
    kind = z["node_kind"]
    features = np.flatnonzero(kind == "feature")
    rows = np.concatenate([features[np.linspace(0, len(features) - 1, N_FEATURE_ROWS).astype(int)],
                           np.flatnonzero(kind == "logit")])
    np.savez_compressed(OUT, rows=rows, adjacency_rows=z["adjacency"][rows], node_kind=kind.astype("U7"),
                        node_layer=z["node_layer"], node_position=z["node_position"], node_feature=z["node_feature"],
                        input_ids=z["input_ids"], logit_ids=z["logit_ids"], logit_probs=z["logit_probs"])
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB): {len(rows)} rows x {len(kind)} nodes; "
          f"circuit-tracer {meta['versions']['circuit_tracer']}, scores {meta.get('scores')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
