#!/usr/bin/env bash
# Set up (idempotent), then run every test: tests/ (core, widgets, real-browser UI) and the shipped notebooks
# under nbval in ONE pytest run, then the core tests a second time under torch's portable CPU kernels
# (ATEN_CPU_CAPABILITY=default), so that a test that only passes on this CPU's vector kernels fails here and
# not on a user's machine. Extra arguments go to the first pytest run and skip the second:
#   bash scripts/test.sh                 # everything (what CI runs)
#   bash scripts/test.sh -m "not ui" -x  # skip the browser tests, stop at the first failure
#   bash scripts/test.sh --cpu-paths     # before a release: the non-browser suite under every CPU kernel
#                                        # path this CPU has (default, avx2, avx512) x 1 and 2 torch threads
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-$(command -v python3 || command -v python)}

# pytest's exit 5 (no test collected) is a failure here, never a silent pass.
run_pytest() {
  local status=0
  "$PY" -m pytest "$@" || status=$?
  if [ "$status" = 5 ]; then
    echo "test.sh: pytest collected no tests (exit 5): treating that as a failure" >&2
  fi
  return "$status"
}

# The tests that run no browser: what torch's kernel choice can move.
NON_BROWSER=(tests/core tests/widgets --ignore-glob='*in_browser*' -m "not ui and not packaging" -p no:cacheprovider)

if [ "${1:-}" = "--cpu-paths" ]; then
  shift
  bash scripts/setup.sh --no-browser
  failed=()
  for capability in default avx2 avx512; do
    # torch silently falls back to the best path the CPU has: skip a path this CPU cannot run.
    got=$(ATEN_CPU_CAPABILITY=$capability "$PY" -c 'import torch; print(torch.backends.cpu.get_cpu_capability())')
    if [ "${got,,}" != "$capability" ] && [ "$capability" != default ]; then
      printf '\n== cpu-paths: %s not available on this CPU (torch runs %s): skipped\n' "$capability" "$got"
      continue
    fi
    for threads in 1 2; do
      printf '\n== cpu-paths: ATEN_CPU_CAPABILITY=%s, %s torch thread(s)\n' "$capability" "$threads"
      ATEN_CPU_CAPABILITY=$capability OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads \
        run_pytest "${NON_BROWSER[@]}" -q "$@" || failed+=("$capability/$threads")
    done
  done
  if [ ${#failed[@]} -gt 0 ]; then
    echo "test.sh --cpu-paths: failures under ${failed[*]}" >&2
    exit 1
  fi
  printf '\n== cpu-paths: every kernel path passed\n'
  exit 0
fi

bash scripts/setup.sh

printf '\n== test: pytest tests + notebooks (nbval)\n'
targets=(tests)
compgen -G "notebooks/*.ipynb" >/dev/null && targets+=(notebooks)
run_pytest "${targets[@]}" --nbval-lax --nbval-current-env -ra --durations=15 "$@"

if [ $# -eq 0 ]; then
  printf '\n== test: tests/core again under the portable CPU kernels (ATEN_CPU_CAPABILITY=default)\n'
  ATEN_CPU_CAPABILITY=default run_pytest tests/core -q -ra -p no:cacheprovider
fi
