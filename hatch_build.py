"""Hatch build hook: every sdist and wheel carries the built front-end (attrwidgets/static/<view>.js).

The bundles are gitignored build output of `npm run build` (esbuild, js/<view>.ts -> attrwidgets/static/). A
standard build (sdist or wheel) makes them when they are missing or out of date with their sources, and FAILS
when it cannot: a wheel without the front-end would install fine and then show "front-end not built".

- Up to date = every view's bundle exists and attrwidgets/static/.sources-sha256 holds the digest of the
  sources they were built from (js/, package.json, package-lock.json, tsconfig.json). A content digest, not
  mtimes: a reproducible sdist gives every file the same mtime. The sdist ships bundles + digest, so a wheel
  built from the sdist needs no Node.js; from a clone it runs `npm ci` (only when node_modules does not match
  the lock file: the same stamp as scripts/setup.sh) and `npm run build` (about a second).
- Editable installs build nothing: they serve attrwidgets/static from the checkout, which scripts/setup.sh
  builds (`npm run dev` rebuilds on save). A missing bundle there is only a warning.
- ATTRWIDGETS_SKIP_FRONTEND_BUILD=1 packs the bundles already in attrwidgets/static as they are (they must
  exist), for a machine without Node.js that has bundles built elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MIN_NODE = 18  # esbuild 0.28 needs Node.js >= 18
STATIC = Path("attrwidgets") / "static"
DIGEST_FILE = STATIC / ".sources-sha256"
BUILD_STAMP = STATIC / ".build-stamp"  # scripts/setup.sh: the bundle is newer than its inputs
LOCK_STAMP = Path("node_modules") / ".attrwidgets-lock"  # scripts/setup.sh: node_modules matches the lock
SOURCES = ("js", "package.json", "package-lock.json", "tsconfig.json")
NEEDS_NODE = (
    "attrwidgets: building the front-end needs Node.js >= {min} and npm on PATH (e.g. apt-get install nodejs "
    "npm, or your platform's Node.js package; {found}). Install them and build again: the wheel must contain "
    "{bundles}, which `npm ci && npm run build` makes from js/. Or build the wheel from an sdist, which ships "
    "the built front-end."
)


class FrontendError(RuntimeError):
    pass


def view_entries(root: Path) -> list[Path]:
    """The views esbuild bundles: the js/<view>.ts entries of package.json's build script."""
    script = json.loads((root / "package.json").read_text())["scripts"]["build"]
    entries = [Path(e) for e in re.findall(r"\bjs/[\w./-]+\.ts\b", script)]
    if not entries:
        raise FrontendError(f"attrwidgets: no js/<view>.ts entry in package.json's build script: {script!r}")
    return entries


def bundles(root: Path) -> list[Path]:
    return [root / STATIC / f"{entry.stem}.js" for entry in view_entries(root)]


def sources_digest(root: Path) -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        path = root / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if f.is_file():
                h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def lock_sum(root: Path) -> str:
    """sha256 of package.json + package-lock.json, as scripts/setup.sh computes it (`cat ... | sha256sum`)."""
    data = b"".join((root / n).read_bytes() for n in ("package.json", "package-lock.json") if (root / n).is_file())
    return hashlib.sha256(data).hexdigest()


def up_to_date(root: Path) -> bool:
    digest = root / DIGEST_FILE
    return (all(b.is_file() and b.stat().st_size > 0 for b in bundles(root)) and digest.is_file()
            and digest.read_text().strip() == sources_digest(root))


def find_node(root: Path) -> tuple[str, str]:
    """(node, npm) on PATH, or FrontendError naming what to install."""
    node, npm = shutil.which("node"), shutil.which("npm")
    found = f"found node: {node or 'no'}, npm: {npm or 'no'}"
    if node and npm:
        try:
            version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
            major = int(version.strip().lstrip("v").split(".")[0])
        except (OSError, subprocess.CalledProcessError, ValueError) as e:
            found = f"`{node} --version` failed: {e}"
        else:
            if major >= MIN_NODE:
                return node, npm
            found = f"found Node.js {version.strip()} at {node}"
    names = ", ".join(b.relative_to(root).as_posix() for b in bundles(root))
    raise FrontendError(NEEDS_NODE.format(min=MIN_NODE, found=found, bundles=names))


def build_frontend(root: Path, log=print) -> list[Path]:
    """Make every view's bundle current (npm ci when needed, npm run build); returns the bundles."""
    root = root.resolve()
    out = bundles(root)
    if up_to_date(root):
        log(f"attrwidgets: front-end up to date ({', '.join(b.name for b in out)})")
        return out
    if os.environ.get("ATTRWIDGETS_SKIP_FRONTEND_BUILD") == "1":
        missing = [str(b.relative_to(root)) for b in out if not b.is_file()]
        if missing:
            raise FrontendError(f"attrwidgets: ATTRWIDGETS_SKIP_FRONTEND_BUILD=1 but {missing} do not exist.")
        log("attrwidgets: ATTRWIDGETS_SKIP_FRONTEND_BUILD=1: packing the existing bundles as they are")
        return out
    if not (root / "js").is_dir():
        raise FrontendError(f"attrwidgets: the front-end sources (js/) are missing from {root}, and "
                            f"{[str(b.relative_to(root)) for b in out]} are missing or out of date.")
    _, npm = find_node(root)

    def npm_run(*args: str) -> None:
        log(f"attrwidgets: npm {' '.join(args)}")
        try:
            subprocess.run([npm, *args], cwd=root, check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            raise FrontendError(f"attrwidgets: `npm {' '.join(args)}` failed in {root}: {e}. Building the "
                                f"front-end needs Node.js >= {MIN_NODE}, npm and the npm registry (for "
                                f"npm ci).") from e

    stamp, lock = root / LOCK_STAMP, lock_sum(root)
    current = stamp.is_file() and stamp.read_text().strip() == lock
    if not current or not (root / "node_modules" / ".bin" / "esbuild").exists():
        has_lock = (root / "package-lock.json").is_file()
        npm_run("ci" if has_lock else "install", "--no-audit", "--no-fund")
        stamp.write_text(lock + "\n")
    npm_run("run", "build")
    missing = [str(b.relative_to(root)) for b in out if not (b.is_file() and b.stat().st_size > 0)]
    if missing:
        raise FrontendError(f"attrwidgets: `npm run build` finished but did not make {missing}.")
    (root / DIGEST_FILE).write_text(sources_digest(root) + "\n")
    (root / BUILD_STAMP).touch()
    return out


class FrontendBuildHook(BuildHookInterface):
    PLUGIN_NAME = "attrwidgets-frontend"

    def initialize(self, version: str, build_data: dict) -> None:
        root = Path(self.root)
        if version == "editable":
            missing = [b.name for b in bundles(root) if not b.is_file()]
            if missing:
                self.app.display_warning(
                    f"attrwidgets: editable install without the front-end ({missing} missing): run "
                    "`npm ci && npm run build` (scripts/setup.sh does) before showing a widget."
                )
            return
        try:
            build_frontend(root, log=self.app.display_info)
        except FrontendError as e:
            self.app.display_error(str(e))
            raise
