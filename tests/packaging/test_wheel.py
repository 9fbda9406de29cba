"""The wheel carries the front-end (issue 9).

attrwidgets/static/<view>.js is gitignored build output, so only the build hook (hatch_build.py) puts it in
a wheel. These tests build from a `git clone` of HEAD (uncommitted changes are NOT in it), the way
`pip install git+...` does:
- the wheel holds every view's bundle (every js/<view>.ts but types.ts), and a fresh virtual environment that
  has only the wheel, not the checkout, exports both views with aw.to_html;
- without Node.js/npm on PATH the build fails, naming what to install, and makes no wheel;
- the sdist holds the sources and the built bundles, so a wheel built from it needs no Node.js.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[2]
# PATH for a build without Node.js: the interpreter's own folder only (git is not needed to build).
NO_NODE_PATH = str(Path(sys.executable).parent)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PIP_ROOT_USER_ACTION="ignore", **extra)
    return env


def _run(args: list[str], cwd: Path, *, check: bool = True, timeout: float = 300,
         **env: str) -> subprocess.CompletedProcess:
    start = time.perf_counter()
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=_env(**env), capture_output=True, text=True,
                          timeout=timeout, check=False)
    shown = " ".join(str(a) for a in args[:5])
    print(f"[{time.perf_counter() - start:5.1f} s] {shown} ... -> {proc.returncode}")
    if check and proc.returncode != 0:
        pytest.fail(f"{args} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n"
                    f"--- stderr\n{proc.stderr[-6000:]}")
    return proc


def _clone(dest: Path) -> Path:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs the git checkout and git (the tests build from a clone of HEAD)")
    _run(["git", "clone", "--quiet", ROOT, dest], cwd=dest.parent)
    assert not (dest / "attrwidgets" / "static").exists(), "a clean clone has no built front-end"
    return dest


def _views(tree: Path) -> list[str]:
    views = sorted(p.stem for p in (tree / "js").glob("*.ts") if p.name != "types.ts")
    assert views, f"no js/<view>.ts in {tree}"
    return views


def _wheel(dist: Path) -> Path:
    wheels = list(dist.glob("attrwidgets-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _pip_wheel(source: Path, dist: Path, *, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """The real, isolated PEP 517 build (hatchling from the index, as pip install git+... does)."""
    return _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", dist, source],
                cwd=dist.parent, check=check, **env)


# Run in the fresh venv, from a folder outside the checkout: the widgets load the wheel's own bundles and
# to_html embeds them (the TokenMatrix and the HeadGrid views).
CHECK_SCRIPT = textwrap.dedent('''
    import json, re, sys
    from pathlib import Path

    import numpy as np

    import attrwidgets as aw
    from attrwidgets.core.tokens import Token
    from attrwidgets.widgets.base import bundle

    venv, views = Path(sys.argv[1]).resolve(), sys.argv[2].split(",")
    package = Path(aw.__file__).resolve().parent
    assert package.is_relative_to(venv), f"attrwidgets imported from {package}, not from the venv {venv}"
    for view in views:
        assert bundle(view) == package / "static" / f"{view}.js", (view, bundle(view))

    def embedded(page):
        block = re.search(r'<script type="application/json" id="aw-bundle">(.*?)</script>', page, re.S)
        return json.loads(block.group(1))

    tokens = [Token(i + 1, t, t, "prompt") for i, t in enumerate(["The", " cat", " sat", " on"])]
    result = aw.Attribution(tokens=tokens, target_positions=[2, 3], method="saliency", model_id="by-hand",
                            scores=np.tril(np.ones((2, 4), np.float32), 1), prompt="The cat")
    page = aw.to_html(result)
    assert embedded(page) == (package / "static" / "token_matrix.js").read_text(encoding="utf-8")

    n_l, n_h, t = 2, 3, len(tokens)
    attention = np.tril(np.ones((n_l, n_h, t, t), np.float32))
    attention /= attention.sum(-1, keepdims=True)
    contributions = np.arange(n_l * n_h, dtype=np.float32).reshape(n_l, n_h) - 2
    heads = aw.HeadContributions(
        tokens=tokens, position=2, target_id=4, target_text=" on", contributions=contributions,
        per_source=attention[:, :, 2, :] * contributions[:, :, None], attention=attention,
        stream=np.zeros(n_l, np.float32), bias=np.zeros(n_l, np.float32), logit=float(contributions.sum()),
        completeness_error=0.0, model_id="by-hand", prompt="The cat")
    page = aw.to_html(heads)
    assert embedded(page) == (package / "static" / "head_grid.js").read_text(encoding="utf-8")
    print("ok", package)
''')


def test_wheel_from_clean_clone_holds_every_view_and_works_without_the_checkout(tmp_path):
    start = time.perf_counter()
    clone = _clone(tmp_path / "clone")
    views = _views(clone)
    dist = tmp_path / "dist"
    dist.mkdir()
    _pip_wheel(clone, dist)
    wheel = _wheel(dist)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for view in views:
            name = f"attrwidgets/static/{view}.js"
            assert name in names, f"{wheel.name} lacks {name}: {sorted(n for n in names if 'static' in n)}"
            assert zf.read(name) == (clone / name).read_bytes() and zf.getinfo(name).file_size > 1000

    # A fresh venv: --system-site-packages lends it torch & co., and so also this checkout's editable
    # install; --ignore-installed puts the wheel in the venv, which comes first on sys.path, and the script
    # proves attrwidgets comes from there.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "--no-deps", "--ignore-installed", "--no-compile", wheel],
         cwd=tmp_path)
    script = tmp_path / "check_wheel.py"
    script.write_text(CHECK_SCRIPT)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    proc = _run([python, script, venv, ",".join(views)], cwd=outside)
    assert proc.stdout.startswith("ok "), proc.stdout
    print(f"clone + isolated wheel build + venv + install + to_html: {time.perf_counter() - start:.1f} s")


def test_build_without_node_fails_loudly_and_the_sdist_needs_no_node(tmp_path):
    """No node/npm on PATH: the wheel build fails and says what to install (never a wheel without the
    front-end). The sdist (built where Node.js is) holds js/, package.json, package-lock.json,
    tsconfig.json and the bundles: a wheel built from it needs no Node.js."""
    clone = _clone(tmp_path / "clone")
    views = _views(clone)
    assert shutil.which("node", path=NO_NODE_PATH) is None and shutil.which("npm", path=NO_NODE_PATH) is None
    dist = tmp_path / "dist"
    dist.mkdir()
    proc = _pip_wheel(clone, dist, check=False, PATH=NO_NODE_PATH)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"built without Node.js:\n{out[-3000:]}"
    assert not list(dist.glob("*.whl"))
    message = re.search(r"attrwidgets: building the front-end needs Node\.js >= \d+ and npm[^\n]*", out)
    assert message, out[-4000:]
    assert "apt-get install nodejs npm" in message.group(0)
    for view in views:
        assert f"attrwidgets/static/{view}.js" in message.group(0)

    # The sdist: hatchling's own CLI, from the same isolated build environment pip would make.
    hatchling = tmp_path / "hatchling"
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--target", hatchling, "hatchling>=1.25"],
         cwd=tmp_path)
    _run([sys.executable, "-m", "hatchling", "build", "--target", "sdist", "--directory", dist], cwd=clone,
         PYTHONPATH=str(hatchling))
    (sdist,) = dist.glob("attrwidgets-*.tar.gz")
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    needed = {"package.json", "package-lock.json", "tsconfig.json", "hatch_build.py", "js/types.ts",
              "attrwidgets/static/.sources-sha256"}
    needed |= {f"js/{v}.ts" for v in views} | {f"attrwidgets/static/{v}.js" for v in views}
    assert needed <= members, sorted(needed - members)

    proc = _pip_wheel(sdist, dist, PATH=NO_NODE_PATH)
    with zipfile.ZipFile(_wheel(dist)) as zf:
        names = set(zf.namelist())
    assert {f"attrwidgets/static/{v}.js" for v in views} <= names
