"""Every host a view runs in, behind one interface, so that testing a live view in each host is one call.

    hosted = show_in("notebook7", SETUP)     # the `show_in` fixture (conftest.py)
    hosted.view                              # Locator of the view's root (.aw-root) where the host shows it
    hosted.eval("w.selected_target")         # a JSON-able value computed in the host's kernel
    hosted.wait_for_kernel(expr)             # poll until truthy
    hosted.execute(code)                     # define helpers in the kernel, silently

SETUP is Python that defines the widget as `w`; each host adds the code that shows it (DISPLAY: what the
README's "Where it runs" table quotes). Hosts:
  lab          JupyterLab, the widget as a cell's output
  notebook7    Notebook 7 (`jupyter notebook`), the widget as a cell's output
  sidecar      JupyterLab's right sidebar through `sidecar` (250 px wide by default)
  marimo       `marimo run` of an app whose cell shows `mo.ui.anywidget(w)`
  marimo-bare  the same app showing a bare `w` (marimo wraps an anywidget itself)
Each server starts once per test session (conftest.py), on a free loopback port with temp config dirs.
marimo has no Jupyter kernel to connect to: the app's first cell starts a loopback socket that evaluates
expressions in the app's globals (PROBE), which gives hosted.eval the same meaning in every host.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.ui.jupyter import ARTIFACTS, JupyterServer, Notebook, free_port, poll_kernel, stop_server

DISPLAY = {
    "lab": "w",
    "notebook7": "w",
    "sidecar": 'from sidecar import Sidecar\n\nwith Sidecar(title="attrwidgets", anchor="right"):\n    display(w)',
    "marimo": "mo.ui.anywidget(w)",
    "marimo-bare": "w",
}
HOSTS = tuple(DISPLAY)
SERVER_OF = {"lab": "lab", "sidecar": "lab", "notebook7": "notebook7", "marimo": "marimo", "marimo-bare": "marimo"}
# Where the view appears: the sidecar's panel in the right side area, else anywhere in the page.
SCOPE = {"sidecar": ".jupyterlab-sidecar "}
# Errors a host raises on its own, with no widget in the page (seen with a notebook holding only `1+1`).
UPSTREAM_ERRORS = {
    # notebook 7.6.5: its shortcuts extension reads the schema of a plugin the settings registry has not loaded
    # yet (notebook_core.js, during start-up).
    "notebook7": re.compile(
        r"pageerror: Cannot read properties of undefined \(reading 'schema'\) \[at \S+/static/notebook/notebook_core\."
    ),
}
LOOPBACK = ("http://127.0.0.1:", "ws://127.0.0.1:", "http://localhost:", "ws://localhost:", "blob:", "data:")
START_TIMEOUT_S = 60


@dataclass
class Hosted:
    """A view shown by a host: the page, the view's root, and the kernel that runs the widget."""

    host: str
    page: Any
    view: Any  # playwright Locator of the .aw-root
    eval: Callable[[str], Any]
    execute: Callable[[str], None]
    offsite: list[str] = field(default_factory=list)  # requests that left the machine (must stay empty)
    close: Callable[[], None] = lambda: None

    def wait_for_kernel(self, expression: str, timeout_s: float = 120, interval_s: float = 0.1):
        """Poll `expression` in the kernel until it is truthy; returns that value."""
        return poll_kernel(self.eval, expression, f"{self.host} kernel", timeout_s, interval_s)

    def console_errors(self) -> list[str]:
        """Console errors and uncaught exceptions in the page, less the host's own (UPSTREAM_ERRORS)."""
        upstream = UPSTREAM_ERRORS.get(self.host)
        return [e for e in self.page.console_errors if not (upstream and upstream.match(e))]

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def show(host: str, server: JupyterServer | MarimoServer, page, setup: str, selector: str = ".aw-root") -> Hosted:
    """Open a notebook / app in `page` that runs `setup` and shows `w` the host's way; wait for the view."""
    offsite: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(LOOPBACK) else offsite.append(r.url))
    name = f"{host.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    if isinstance(server, MarimoServer):
        kernel = server.open(page, name, textwrap.dedent(setup), DISPLAY[host])
        evaluate, execute, close = kernel.eval, kernel.execute, lambda: None
    else:
        path = server.write_notebook(f"{name}.ipynb", [textwrap.dedent(setup).strip(), DISPLAY[host]])
        nb = Notebook(server, page, path).open()
        nb.run_all(timeout_s=300)
        evaluate, execute = nb.eval, nb.execute

        def close() -> None:
            nb.close()
            server.delete_sessions()

    view = page.locator(f"{SCOPE.get(host, '')}{selector}").first
    view.wait_for(state="visible", timeout=120_000)
    assert page.locator(".aw-not-built").count() == 0, "front-end not built: run npm ci && npm run build"
    return Hosted(host, page, view, evaluate, execute, offsite, close)


# -- marimo ----------------------------------------------------------------------------------------------------

# The app's first cell: a loopback socket answering {"eval": expr} / {"exec": code} in the app's globals, one
# JSON line each way. It writes its port to PORT_FILE once listening (atomic rename, so never half-written).
PROBE = """
import json as _json, os as _os, socket as _socket, threading as _threading

def _serve(namespace, port_file):
    server = _socket.create_server(("127.0.0.1", 0))
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.getsockname()[1]))
    _os.replace(port_file + ".tmp", port_file)
    while True:
        conn, _addr = server.accept()
        with conn, conn.makefile("rwb") as stream:
            request = _json.loads(stream.readline())
            try:
                if "exec" in request:
                    exec(request["exec"], namespace)
                    reply = {"ok": True, "value": None}
                else:
                    reply = {"ok": True, "value": eval(request["eval"], namespace)}
            except Exception as e:
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            stream.write((_json.dumps(reply) + "\\n").encode())

_threading.Thread(target=_serve, args=(globals(), PORT_FILE), daemon=True).start()
"""

APP = """import marimo

app = marimo.App()


@app.cell
def _():
{probe}
    return


@app.cell
def _():
    import marimo as mo
{setup}
{display}
    return


if __name__ == "__main__":
    app.run()
"""


class MarimoKernel:
    """hosted.eval / hosted.execute for a marimo app, through the app's PROBE socket."""

    def __init__(self, port_file: Path, timeout_s: float = 120):
        deadline = time.monotonic() + timeout_s
        while not port_file.exists():
            assert time.monotonic() < deadline, f"the marimo app did not start its probe within {timeout_s} s"
            time.sleep(0.1)
        self.port = int(port_file.read_text())

    def _ask(self, request: dict):
        with socket.create_connection(("127.0.0.1", self.port), timeout=120) as conn:
            stream = conn.makefile("rwb")
            stream.write((json.dumps(request) + "\n").encode())
            stream.flush()
            reply = json.loads(stream.readline())
        assert reply["ok"], f"marimo kernel: {request} raised {reply['error']}"
        return reply["value"]

    def eval(self, expression: str):
        return self._ask({"eval": expression})

    def execute(self, code: str) -> None:
        self._ask({"exec": code})


class MarimoServer:
    """`marimo run` of a folder of apps (one server for every app of the session); stopped by its PID.

    Headless, loopback only, no token; update checks off and config/state in temp dirs, so it reaches
    nothing beyond this machine and never reads or writes the user's marimo settings.
    """

    def __init__(self, base: Path):
        self.base = base
        self.root = base / "apps"
        self.root.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "marimo.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ, MARIMO_SKIP_UPDATE_CHECK="1")
        for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
            (self.base / var).mkdir(exist_ok=True)
            env[var] = str(self.base / var)
        cmd = [
            sys.executable, "-m", "marimo", "-q", "run", str(self.root), "--headless", "--host", "127.0.0.1",
            "--port", str(self.port), "--no-token", "--no-sandbox", "--session-ttl", "5",
            # --watch on one folder: marimo serves apps written after it started (without it, `run dir/`
            # serves a snapshot of the folder taken at start-up: marimo/_cli/cli.py _create_run_workspace).
            "--watch",
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"marimo exited with {self.proc.returncode}:\n{self.log()}")
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=5).read()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"marimo did not answer within {START_TIMEOUT_S} s:\n{self.log()}")

    def stop(self) -> None:
        stop_server(self.proc)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def open(self, page, name: str, setup: str, display: str) -> MarimoKernel:
        """Write app `name`.py (probe, then setup + display in one cell), open it in `page`, reach its kernel."""
        port_file = self.base / f"{name}.port"
        probe = PROBE.replace("PORT_FILE", repr(str(port_file)))
        source = APP.format(probe=textwrap.indent(probe, "    "), setup=textwrap.indent(setup.strip(), "    "),
                            display=textwrap.indent(display, "    "))
        (self.root / f"{name}.py").write_text(source)
        page.goto(f"{self.url}/?file={name}.py")  # `marimo run` runs every cell when the page connects
        return MarimoKernel(port_file)

