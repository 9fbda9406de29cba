"""Real JupyterLab, Notebook 7 and marimo in Debian's Chromium, driven by Playwright (docs/architecture.md, Tests).

Fixtures:
  lab       one JupyterLab server for tests/ui: temp JUPYTER_* dirs, deterministic settings, a free port and a
            token; its root is a temp folder, so notebooks are copied in and the repo is never written to.
  notebook7_server, marimo_server   the same for Notebook 7 and `marimo run`; started on first use.
  page      a fresh browser page that records console errors and uncaught page errors, and leaves a
            screenshot in tests/ui/artifacts/ when the test ends.
  open_notebook(path) -> Notebook: opens a notebook in `page` (JupyterLab) and waits for its kernel; the
            Notebook runs all cells through the menu and evaluates Python in that same kernel (to compare what
            the browser shows with what the kernel holds). The machinery lives in jupyter.py.
  show_in(host, setup) -> Hosted: a view in any host (JupyterLab, Notebook 7, the sidecar, marimo) through one
            interface: hosts.py.

Missing chromium or playwright skips these tests locally and FAILS them in CI (CI=true).
The servers, Playwright and the browser live for this package only: Playwright's sync API keeps an event loop
running while it is open, and other tiers that start their own sync_playwright() would fail inside it.
"""

from __future__ import annotations

import json

import pytest

from tests.browser_support import CHROMIUM_ARGS, find_chromium, unavailable
from tests.ui.hosts import SERVER_OF, MarimoServer, show
from tests.ui.jupyter import ARTIFACTS, BENIGN_404, JupyterServer, Notebook


@pytest.fixture(scope="package")
def chromium_executable() -> str:
    path = find_chromium()
    if path is None:
        unavailable("no chromium (looked for /usr/bin/chromium; install with `apt-get install -y chromium`)")
    return path


@pytest.fixture(scope="package")
def playwright_api():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the `playwright` Python package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def expect(playwright_api):
    """playwright's auto-retrying assertions (imported here so a missing playwright skips, not errors)."""
    from playwright.sync_api import expect

    return expect


@pytest.fixture(scope="package")
def browser(playwright_api, chromium_executable):
    browser = playwright_api.chromium.launch(executable_path=chromium_executable, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


def _need(module: str, what: str) -> None:
    """A host's package is in the dev extra: missing, it skips locally and fails in CI, like Chromium."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        unavailable(f"{what} is not installed (it is in the dev extra: pip install -e '.[dev]')")


def _serve(server):
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def lab(tmp_path_factory, chromium_executable):
    yield from _serve(JupyterServer(tmp_path_factory.mktemp("lab")))


@pytest.fixture(scope="package")
def notebook7_server(tmp_path_factory, chromium_executable):
    _need("notebook", "Notebook 7")
    yield from _serve(JupyterServer(tmp_path_factory.mktemp("notebook7"), app="notebook"))


@pytest.fixture(scope="package")
def marimo_server(tmp_path_factory, chromium_executable):
    _need("marimo", "marimo")
    yield from _serve(MarimoServer(tmp_path_factory.mktemp("marimo")))


@pytest.fixture
def save_timings(request):
    """Write a test's measured seconds to tests/ui/artifacts/<test>-timings.json (and print them)."""

    def _save(timings: dict) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        rounded = {k: round(v, 3) for k, v in timings.items()}
        (ARTIFACTS / f"{request.node.name}-timings.json").write_text(json.dumps(rounded, indent=1))
        print(request.node.name, rounded)

    return _save


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.console_errors = []  # "console.error" messages and uncaught exceptions, in order

    def on_console(msg) -> None:
        url = (msg.location or {}).get("url", "")
        if msg.type != "error" or BENIGN_404.search(url) and msg.text.startswith("Failed to load resource"):
            return
        page.console_errors.append(f"console: {msg.text}" + (f" ({url})" if url else ""))

    def on_pageerror(exc) -> None:  # with the top frame, so a host's own known error can be told from ours
        frame = (exc.stack or "").splitlines()[1:2]
        page.console_errors.append(f"pageerror: {exc}" + (f" [{frame[0].strip()}]" if frame else ""))

    page.on("console", on_console)
    page.on("pageerror", on_pageerror)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-end.png"), full_page=True)
    finally:
        context.close()


@pytest.fixture
def open_notebook(lab, page):
    opened: list[Notebook] = []

    def _open(path: str) -> Notebook:
        nb = Notebook(lab, page, path).open()
        opened.append(nb)
        return nb

    yield _open
    for nb in opened:
        nb.close()
    lab.delete_sessions()


@pytest.fixture
def show_in(request, page):
    """show_in(host, setup) -> Hosted: `setup` (Python defining the widget `w`) shown in `host` (hosts.HOSTS);
    the host's server is started on first use and shared by every later test."""
    shown = []

    def _show(host: str, setup: str, selector: str = ".aw-root"):
        if host == "sidecar":
            _need("sidecar", "sidecar")
        server = request.getfixturevalue({"lab": "lab"}.get(SERVER_OF[host], f"{SERVER_OF[host]}_server"))
        hosted = show(host, server, page, setup, selector)
        shown.append(hosted)
        return hosted

    yield _show
    for hosted in shown:
        hosted.close()
