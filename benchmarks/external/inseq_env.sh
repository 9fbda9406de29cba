#!/usr/bin/env bash
# Build the two Inseq virtual environments of benchmarks/external/ (Inseq is never a dependency of attrwidgets):
#   /work/venvs/inseq    Inseq latest (0.7.x): inseq_fixtures.py (v07 files) and inseq_roundtrip.py
#   /work/venvs/inseq06  Inseq 0.6.0, the last release that saved numpy blocks: inseq_fixtures.py (v06 file)
# Inseq 0.6.0 is installed without its dependencies (they pin CUDA 11 wheels) and with the ones it imports, under
# transformers < 4.46, which it predates. Idempotent. Usage: bash benchmarks/external/inseq_env.sh
set -euo pipefail
NEW="${INSEQ_VENV:-/work/venvs/inseq}"
OLD="${INSEQ06_VENV:-/work/venvs/inseq06}"

if ! { [ -x "$NEW/bin/python" ] && "$NEW/bin/python" -c "import inseq" >/dev/null 2>&1; }; then
    [ -x "$NEW/bin/python" ] || python3 -m venv "$NEW"
    "$NEW/bin/pip" install torch --index-url https://download.pytorch.org/whl/cpu
    "$NEW/bin/pip" install inseq
fi
if ! { [ -x "$OLD/bin/python" ] && "$OLD/bin/python" -c "import inseq" >/dev/null 2>&1; }; then
    [ -x "$OLD/bin/python" ] || python3 -m venv "$OLD"
    "$OLD/bin/pip" install torch --index-url https://download.pytorch.org/whl/cpu
    "$OLD/bin/pip" install --no-deps inseq==0.6.0
    "$OLD/bin/pip" install "transformers<4.46" sentencepiece tokenizers protobuf "captum>=0.7" "numpy<2" jaxtyping \
        "typeguard<=2.13.3" matplotlib tqdm rich
fi
"$NEW/bin/python" -c "from importlib.metadata import version; print('inseq venv ready:', version('inseq'))"
"$OLD/bin/python" -c "from importlib.metadata import version; print('inseq06 venv ready:', version('inseq'))"
