#!/usr/bin/env bash
# Set up (idempotent), then start JupyterLab on notebooks/quickstart.ipynb.
#   bash scripts/run_lab.sh             # opens a browser tab (prints the URL when there is no display)
#   bash scripts/run_lab.sh --headless  # never opens a browser: prints the URL to open yourself
# Other arguments go to `jupyter lab` (e.g. --port 8890).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
headless=0
args=()
for arg in "$@"; do
  if [ "$arg" = --headless ]; then headless=1; else args+=("$arg"); fi
done
# Linux without X11/Wayland has no browser to open (macOS and Windows have no DISPLAY but can open one).
if [ "$(uname -s)" = Linux ] && [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then headless=1; fi

bash scripts/setup.sh --no-browser
PY=${PYTHON:-$(command -v python3 || command -v python)}

# default_url: the URL that opens (or is printed) goes straight to the quickstart notebook.
lab=("$PY" -m jupyterlab --ServerApp.root_dir="$PWD" --LabApp.default_url=/lab/tree/notebooks/quickstart.ipynb)
[ "$(id -u)" = 0 ] && lab+=(--allow-root)
if [ "$headless" = 1 ]; then
  lab+=(--no-browser)
  printf '\n== JupyterLab: no browser will open; open the http://127.0.0.1:.../lab/tree/notebooks/quickstart.ipynb?token=... URL below.\n\n'
else
  printf '\n== JupyterLab: opening notebooks/quickstart.ipynb in your browser (Ctrl-C to stop).\n\n'
fi
exec "${lab[@]}" ${args[@]+"${args[@]}"}
