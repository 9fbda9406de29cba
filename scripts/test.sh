#!/usr/bin/env bash
# Set up (idempotent), then run every test in ONE pytest run: tests/ (core, widgets, real-browser UI) and the
# shipped notebooks under nbval. Extra arguments go to pytest:
#   bash scripts/test.sh                 # everything (what CI runs)
#   bash scripts/test.sh -m "not ui" -x  # skip the browser tests, stop at the first failure
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
PY=${PYTHON:-$(command -v python3 || command -v python)}

printf '\n== test: pytest tests + notebooks (nbval)\n'
targets=(tests)
compgen -G "notebooks/*.ipynb" >/dev/null && targets+=(notebooks)
status=0
"$PY" -m pytest "${targets[@]}" --nbval-lax --nbval-current-env -ra --durations=15 "$@" || status=$?
if [ "$status" = 5 ]; then
  echo "test.sh: pytest collected no tests (exit 5): treating that as a failure" >&2
fi
exit "$status"
