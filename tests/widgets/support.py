"""Shared test material: results, a scriptable fake session (the CONTRACT's interface), wire helpers."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
from ipywidgets.widgets.widget import _put_buffers, _remove_buffers

from attrwidgets.core.token.result import Attribution
from attrwidgets.core.tokens import Token
from attrwidgets.widgets.serialization import deserialize_tensor

HOSTILE = "<img src=x onerror=alert(1)>"
SCRIPT_BREAKER = "</script><!--"


def make_tokens() -> list[Token]:
    return [
        Token(1, "<|im_start|>", "<|im_start|>", "user", True),
        Token(2, "Hi", "Hi", "user", False),
        Token(3, HOSTILE, HOSTILE, "user", False),
        Token(4, "<|im_end|>", "<|im_end|>", "user", True),
        Token(5, SCRIPT_BREAKER, SCRIPT_BREAKER, "assistant", False),
        Token(6, "Ġok", " ok", "generated", False),
        Token(7, "Ġyes", " yes", "generated", False),
        Token(8, "<|im_end|>", "<|im_end|>", "generated", True),
    ]


TARGETS = [5, 6, 7]


def expected_scores(method: str, n_steps: int = 0) -> np.ndarray:
    """Deterministic, causal scores of the fake session: row i is nonzero only left of its target."""
    base = {"saliency": 1.0, "integrated_gradients": 10.0, "input_x_gradient": -1.0}.get(method, 5.0)
    out = np.zeros((len(TARGETS), len(make_tokens())), np.float32)
    for i, pos in enumerate(TARGETS):
        out[i, :pos] = base * (i + 1) + np.arange(pos) * 0.25 - 0.5 + n_steps * 1e-3
    return out


def make_result(method: str = "integrated_gradients", **kw) -> Attribution:
    n = len(TARGETS)
    ig = method == "integrated_gradients"
    fields = {
        "tokens": make_tokens(), "target_positions": list(TARGETS), "scores": expected_scores(method, 32),
        "method": method, "options": {"n_steps": 32} if ig else {}, "model_id": "fake-model", "prompt": "Hi",
        "target_prob": np.linspace(0.2, 0.6, n), "target_entropy": np.linspace(1, 2, n),
        "completeness_error": np.array([0.01, 0.2, 0.03]) if ig else None,
    }
    return Attribution(**{**fields, **kw})


class FakeSession:
    """Implements the AttributionSession contract with scripted delays and failures.

    delays: {(method, row or None): seconds}; fail: {method: exception}; gate: an Event compute waits on.
    """

    methods: ClassVar[list[str]] = ["input_x_gradient", "integrated_gradients", "saliency"]
    model_id = "fake-model"

    def __init__(self, delays=None, fail=None, gate: threading.Event | None = None):
        self.tokens = make_tokens()
        self.target_positions = list(TARGETS)
        self.target_prob = np.array([0.5, 0.25, 0.125], np.float32)
        self.target_entropy = np.array([1.0, 2.0, 3.0], np.float32)
        self.delays = delays or {}
        self.fail = dict(fail or {})
        self.gate = gate
        self.calls: list[tuple[str, tuple | None, dict]] = []
        self.cancelled: list[tuple[str, tuple | None]] = []
        self.lock = threading.Lock()

    def is_cheap(self, method: str) -> bool:
        return method != "integrated_gradients"

    def compute(self, method, rows=None, progress=True, cancel=None, **options):
        with self.lock:
            self.calls.append((method, None if rows is None else tuple(rows), dict(options)))
        if self.gate is not None:
            self.gate.wait(10)
        delay = self.delays.get((method, None if rows is None else rows[0]), 0.0)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                self.cancelled.append((method, None if rows is None else tuple(rows)))
                raise RuntimeError("cancelled")
            time.sleep(0.01)
        if method in self.fail:
            raise self.fail[method]
        full = expected_scores(method, options.get("n_steps", 0))
        scores = np.full_like(full, np.nan)
        which = list(range(len(TARGETS))) if rows is None else list(rows)
        scores[which] = full[which]
        compl = None
        if method == "integrated_gradients":
            compl = np.full(len(TARGETS), np.nan, np.float32)
            compl[which] = 1.0 / options["n_steps"]
        return Attribution(
            tokens=self.tokens, target_positions=self.target_positions, scores=scores, method=method,
            options=dict(options), model_id=self.model_id, prompt="Hi", target_prob=self.target_prob,
            target_entropy=self.target_entropy, completeness_error=compl,
        )


def wire_state(widget) -> dict:
    """The state as it crosses the comm (JSON part + binary buffers), decoded back as the browser would."""
    state, buffer_paths, buffers = _remove_buffers(widget.get_state())
    assert all(isinstance(b, (memoryview, bytes, bytearray)) for b in buffers)
    _put_buffers(state, buffer_paths, buffers)
    for key in ("scores", "target_prob", "target_entropy", "completeness_error"):
        state[key] = deserialize_tensor(state.get(key))
    return state


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)




def open_offline_page(browser, path, *, width: int = 1100, selector: str = ".aw-root[data-render-count]"):
    """A standalone page in a new tab that may load only file: and blob: URLs (anything else is aborted);
    page errors and console errors collect in `page.problems`, dialogs (an injected alert) in `page.dialogs`."""
    pg = browser.new_page(viewport={"width": width, "height": 900})
    pg.problems, pg.dialogs = [], []
    pg.on("pageerror", lambda e: pg.problems.append(str(e)))
    pg.on("console", lambda m: m.type == "error" and pg.problems.append(m.text))
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.route("**/*", lambda route: route.abort() if not route.request.url.startswith(("file:", "blob:"))
             else route.continue_())
    pg.goto(path.as_uri())
    pg.wait_for_selector(selector)
    return pg


# The standalone page's model, wired to a live Python widget: the view's save_changes() sends its view traits
# to Python (as ipywidgets' set_state applies one message) and the reply's traits come back, tensors decoded
# from base64 as the page's own model decodes them.
_KERNEL_BRIDGE = """(keys) => {
  const m = window.attrwidgetsModel;
  const decode = (v) => {
    if (!v || typeof v !== "object" || typeof v.base64 !== "string") return v;
    const raw = atob(v.base64);
    const bytes = Uint8Array.from(raw, (c) => c.charCodeAt(0));
    return { buffer: new DataView(bytes.buffer), dtype: v.dtype, shape: v.shape };
  };
  m.set("can_compute", true);
  m.save_changes = async () => {
    m.set("busy", true);
    const reply = await window.awKernel(Object.fromEntries(keys.map((k) => [k, m.get(k)])));
    for (const [k, v] of Object.entries(reply)) m.set(k, decode(v));
  };
}"""


def connect_to_widget(page, widget, view_traits: list[str], reply_traits: list[str], timeout: float = 60) -> list:
    """Make `page` (a to_html page of `widget`) talk to the live widget; returns the list of views it sent."""
    from attrwidgets.widgets.html_page import base64_buffers as _base64_buffers

    calls = []

    def kernel(view: dict) -> dict:
        calls.append(view)
        with widget.hold_trait_notifications():
            for key, value in view.items():
                if getattr(widget, key) != value:
                    setattr(widget, key, value)
        widget.wait(timeout)
        return {**_base64_buffers(widget.get_state(reply_traits)), "can_compute": True}

    page.expose_function("awKernel", kernel)
    page.evaluate(_KERNEL_BRIDGE, view_traits)
    return calls


REPO = Path(__file__).resolve().parents[2]
ESBUILD = REPO / "node_modules" / ".bin" / "esbuild"


def node_script(tmp: Path, entry: str):
    """Bundle `entry` (TypeScript importing the front-end's modules; "%(root)s" is the repository) for node, and
    return run(payload) -> what the script prints (JSON), given `payload` as a JSON file in argv[2]. Skips
    without node or esbuild (`npm ci`)."""
    import pytest

    if shutil.which("node") is None or not ESBUILD.exists():
        pytest.skip("needs node and `npm ci` (node_modules/.bin/esbuild) to run the front-end code")
    (tmp / "entry.ts").write_text(entry % {"root": REPO.as_posix()})
    subprocess.run([str(ESBUILD), str(tmp / "entry.ts"), "--bundle", "--platform=node", "--format=esm",
                    f"--outfile={tmp / 'entry.mjs'}"], check=True, capture_output=True)

    def run(payload):
        (tmp / "input.json").write_text(json.dumps(payload))
        return json.loads(subprocess.run(["node", str(tmp / "entry.mjs"), str(tmp / "input.json")], check=True,
                                         capture_output=True, text=True).stdout)

    return run

