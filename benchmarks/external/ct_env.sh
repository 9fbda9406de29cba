#!/usr/bin/env bash
# Build the separate virtual environment for circuit-tracer 0.5.0, the reference side of
# benchmarks/graph/bench_graph.py (run through benchmarks/external/ct_runner.py). It pins transformers 4.57 and nnsight 0.7
# (with nnsight 0.8 circuit-tracer 0.5.0 fails on import), which the project's environment does not use:
# never install it there.
# Idempotent: does nothing if the venv already imports circuit_tracer 0.5.0 with nnsight 0.7.0.
# Usage: bash benchmarks/external/ct_env.sh [VENV_DIR]   (default $CT_VENV or /work/venvs/ct)
set -euo pipefail
VENV="${1:-${CT_VENV:-/work/venvs/ct}}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

ready() {
    "$VENV/bin/python" - <<'PY' >/dev/null 2>&1
from importlib import metadata as m
assert m.version("circuit-tracer") == "0.5.0", m.version("circuit-tracer")
assert m.version("nnsight") == "0.7.0"
assert m.version("transformers") == "4.57.3"
assert m.version("torch").startswith("2.13.0")
# circuit_tracer's __init__ is lazy: import the nnsight backend itself (what breaks with a wrong nnsight).
from circuit_tracer.replacement_model.replacement_model_nnsight import NNSightReplacementModel  # noqa: F401
from circuit_tracer import attribute  # noqa: F401
PY
}

if [ -x "$VENV/bin/python" ] && ready; then
    echo "circuit-tracer venv ready: $VENV"
    exit 0
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# The pinned CPU build first (the wheel that lies on this machine, as in scripts/setup.sh): an open torch
# range with no torch installed would pull the newest CUDA build.
"$VENV/bin/pip" install "torch==2.13.0"
"$VENV/bin/pip" install "circuit-tracer==0.5.0" "nnsight==0.7.0" "transformers==4.57.3"
if ! ready; then
    echo "ct_env.sh: the venv at $VENV was built but does not import circuit_tracer 0.5.0 with nnsight 0.7.0" >&2
    "$VENV/bin/python" -c "import circuit_tracer" || true
    exit 1
fi
"$VENV/bin/python" -c "import circuit_tracer, nnsight, torch; print('circuit-tracer venv ready:', circuit_tracer.__file__, 'nnsight', nnsight.__version__, 'torch', torch.__version__)"
