"""Jupyter servers for the browser tests: JupyterLab and Notebook 7 (the same server, two front-ends), and a
driver for one open notebook (run it through the UI, evaluate Python in its kernel). Used by conftest.py's
fixtures and by hosts.py; nothing here is a fixture.
"""

from __future__ import annotations

import ast
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

# Settings that keep runs deterministic: no news/update fetches, and no autosave writing outputs back.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}
SERVER_START_TIMEOUT_S = 60
# JupyterLab's own probe for the language-server extension 404s where jupyter-lsp's server part is not
# enabled (e.g. a venv that borrows system site-packages); it says nothing about the widgets under test.
BENIGN_404 = re.compile(r"/lsp/status")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# 'dialog' while a dialog (Select Kernel) is open, 'kernel' once the toolbar names a kernel, else false.
_KERNEL_STATE_JS = """() => {
    if (document.querySelector('.jp-Dialog')) return 'dialog';
    const name = document.querySelector('.jp-NotebookPanel .jp-KernelName, .jp-NotebookPanel .jp-Toolbar-kernelName');
    const text = name && name.textContent.trim();
    return text && text !== 'No Kernel' ? 'kernel' : false;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def stop_server(proc: subprocess.Popen | None) -> None:
    """SIGTERM (a server shuts its kernels down before it exits), then SIGKILL. The process group is the one
    Popen(start_new_session=True) made for that server, so nothing else is signalled."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def poll_kernel(evaluate, expression: str, where: str, timeout_s: float, interval_s: float):
    """Evaluate `expression` (in a kernel or an app) until it is truthy; returns that value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = evaluate(expression)
        if value or time.monotonic() > deadline:
            assert value, f"{where}: {expression!r} still {value!r} after {timeout_s} s"
            return value
        time.sleep(interval_s)

class JupyterServer:
    """A running `jupyter lab` (app="jupyterlab") or `jupyter notebook` (app="notebook", Notebook 7); stopped by
    its PID when the tests/ui package is done."""

    def __init__(self, base: Path, app: str = "jupyterlab"):
        self.app = app
        self.base = base
        self.root = base / "root"
        self.root.mkdir()
        self.runtime_dir = base / "runtime"
        self.token = uuid.uuid4().hex
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "lab.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ)
        for var, sub in [
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_DATA_DIR", "data"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("JUPYTERLAB_SETTINGS_DIR", "settings"),
            ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
        ]:
            (self.base / sub).mkdir(exist_ok=True)
            env[var] = str(self.base / sub)
        for name, value in LAB_SETTINGS.items():
            path = self.base / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        # `-m jupyterlab`, not `jupyter lab`: the latter runs whichever jupyter-lab is first on PATH, and the
        # kernel runs the server's interpreter (jupyter_client maps a spec's "python" to sys.executable).
        cmd = [
            sys.executable, "-m", self.app, "--no-browser", f"--port={self.port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}", "--allow-root",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={self.root}",
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:  # the server keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.app} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.api("GET", "/api/status")
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.app} did not answer within {SERVER_START_TIMEOUT_S} s:\n{self.log()}")

    def stop(self) -> None:
        stop_server(self.proc)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def api(self, method: str, path: str, body: dict | None = None):
        req = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            data = resp.read()
        return json.loads(data) if data else None

    def delete_sessions(self) -> None:
        """An old session's kernel would re-render its widgets into the next test: end them all."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")

    def copy_in(self, source: Path) -> None:
        """Copy a file or a folder's contents into the server root (notebooks keep their relative paths)."""
        if source.is_dir():
            shutil.copytree(
                source, self.root, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".ipynb_checkpoints")
            )
        else:
            shutil.copyfile(source, self.root / source.name)

    def write_notebook(self, name: str, cells: list[str]) -> str:
        """Write a notebook of code cells (with a python3 kernelspec) into the server root."""
        import nbformat

        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nbformat.write(nb, self.root / name)
        return name

    def notebook_url(self, notebook: str) -> str:
        if self.app == "notebook":  # Notebook 7: one document per page, no workspace to restore
            return f"{self.url}/notebooks/{notebook}?token={self.token}"
        # ?reset: start from an empty workspace instead of restoring an earlier test's notebooks.
        return f"{self.url}/lab/tree/{notebook}?reset&token={self.token}"

    def kernel_client(self, notebook: str):
        """A client on the kernel that the browser's session for `notebook` runs."""
        from jupyter_client import BlockingKernelClient

        sessions = [s for s in self.api("GET", "/api/sessions") if s["path"] == notebook]
        assert len(sessions) == 1, f"expected one session for {notebook}, got {sessions}"
        client = BlockingKernelClient(
            connection_file=str(self.runtime_dir / f"kernel-{sessions[0]['kernel']['id']}.json")
        )
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=30)
        return client


class Notebook:
    """One notebook open in JupyterLab or Notebook 7: run it through the UI, evaluate expressions in its kernel."""

    def __init__(self, lab: JupyterServer, page, path: str):
        self.lab, self.page, self.path = lab, page, path
        self._client = None

    def open(self) -> Notebook:
        self.lab.delete_sessions()
        self.page.goto(self.lab.notebook_url(self.path))
        self.page.locator(".jp-NotebookPanel").first.wait_for(state="visible", timeout=60_000)
        # Run All before a kernel is attached opens a "Select Kernel" dialog that blocks the run. A notebook
        # without kernelspec metadata asks up front: accept the default (this environment's Python 3).
        state = self.page.wait_for_function(_KERNEL_STATE_JS, timeout=60_000).json_value()
        if state == "dialog":
            self.page.locator(".jp-Dialog .jp-mod-accept").click()
            self.page.wait_for_function(f"() => ({_KERNEL_STATE_JS})() === 'kernel'", timeout=60_000)
        self.wait_idle(timeout_s=60)
        return self

    def wait_idle(self, timeout_s: float = 120) -> None:
        self.page.wait_for_function(
            """() => {
                const ind = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
                return ind && ind.getAttribute('data-status') === 'idle';
            }""",
            timeout=timeout_s * 1000,
        )

    def run_all(self, timeout_s: float = 300) -> None:
        """Run > Run All Cells (found by its label), then wait until the kernel has run every code cell.

        Progress is read from the kernel's broadcast channel, not from the page: a saved notebook already
        shows "[n]" prompts, and JupyterLab stops a run at the first error, which then fails here with the
        cell's traceback instead of timing out.
        """
        import nbformat

        cells = nbformat.read(self.lab.root / self.path, as_version=4).cells
        n_cells = sum(1 for c in cells if c.cell_type == "code" and c.source.strip())
        kernel = self._kernel()
        while kernel.iopub_channel.msg_ready():
            kernel.get_iopub_msg(timeout=0)
        self.page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        self.page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        started, last_request, finished = 0, None, False
        deadline = time.monotonic() + timeout_s
        while not finished:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"Run All: {started} of {n_cells} cells started within {timeout_s} s"
            try:
                msg = kernel.get_iopub_msg(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            kind, content, parent = msg["msg_type"], msg["content"], msg["parent_header"].get("msg_id")
            if kind == "execute_input":
                started, last_request = started + 1, parent
            elif kind == "error":
                tb = _ANSI.sub("", "\n".join(content.get("traceback", [])))
                raise AssertionError(
                    f"cell {started} of {n_cells} raised {content['ename']}: {content['evalue']}\n{tb}"
                )
            elif kind == "status" and content["execution_state"] == "idle" and parent == last_request:
                # The last cell's request going idle ends the run (widget comm traffic has other parents).
                finished = started >= n_cells

    def run_view(self, selector: str, helpers: str):
        """Run All, wait for the view `selector` to show (built: no "front-end not built" notice), then define the
        test's kernel helpers; returns the view's locator."""
        self.run_all(timeout_s=300)
        view = self.page.locator(selector).first
        view.wait_for(state="visible")
        assert self.page.locator(".aw-not-built").count() == 0, "front-end not built: run npm ci && npm run build"
        self.execute(helpers)
        return view

    def _kernel(self):
        if self._client is None:
            self._client = self.lab.kernel_client(self.path)
        return self._client

    def execute(self, code: str) -> None:
        """Run `code` in the notebook's own kernel without touching the notebook (defines test helpers).

        A second client on the same kernel sends a silent request: no output and no execution count appear
        in the notebook, and the kernel runs it after the comm messages that clicks have already queued.
        """
        reply = self._kernel().execute_interactive(code, silent=True, timeout=120)
        assert reply["content"]["status"] == "ok", reply["content"]

    def eval(self, expression: str):
        """Evaluate `expression` in the notebook's own kernel; its value must be JSON-able."""
        reply = self._kernel().execute_interactive(
            "", silent=True, user_expressions={"v": f"__import__('json').dumps({expression})"}, timeout=120
        )
        value = reply["content"]["user_expressions"]["v"]
        assert value["status"] == "ok", f"{expression!r} raised {value.get('ename')}: {value.get('evalue')}"
        return json.loads(ast.literal_eval(value["data"]["text/plain"]))

    def wait_for_kernel(self, expression: str, timeout_s: float = 120, interval_s: float = 0.1):
        """Poll `expression` in the kernel until it is truthy; returns that value."""
        return poll_kernel(self.eval, expression, "kernel", timeout_s, interval_s)

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        if self._client is not None:
            self._client.stop_channels()
