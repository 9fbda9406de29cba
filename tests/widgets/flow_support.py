"""Test material for LayerFlow: LayerAttributions built by hand (numpy) and a scriptable fake LigSession."""

from __future__ import annotations

import threading
import time

import numpy as np

from attrwidgets.core.forward import ComputationCancelled
from attrwidgets.core.lig.result import LayerAttribution
from attrwidgets.core.tokens import Token

from .support import HOSTILE

N_LAYERS, N_HEADS, HIDDEN = 3, 4, 8
OPTIONS = {"n_steps": 8, "quadrature": "gauss_legendre", "baseline_layer": "self_input_token",
           "baseline_att": "self_input_token", "baseline_mlp": "zero", "routes": ["layer", "att", "mlp"],
           "layers": [0, 1, 2]}
COMPUTED = [3, 5]  # target columns a static result holds
FLAGGED = (2, 5)  # (layer, target): its z->z column has a 5% completeness error


def flow_tokens() -> list[Token]:
    return [Token(1, "The", "The", "prompt"), Token(2, "Ġcat", " cat", "prompt"), Token(3, "Ċ", "\n", "prompt"),
            Token(4, HOSTILE, HOSTILE, "prompt"), Token(5, "Ġsat", " sat", "prompt"),
            Token(6, "Ġdown", " down", "prompt")]


def column(route: str, baseline: str, layer: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic (scores, expected, error) of one target column; causal: sources after the target are 0."""
    seed = ["layer", "att", "mlp"].index(route) * 1000 + layer * 100 + target * 10 + len(baseline)
    rng = np.random.default_rng(seed)
    t = len(flow_tokens())
    if route == "mlp":
        scores = rng.normal(size=HIDDEN).astype(np.float32)
        return scores, np.float32(scores.sum()), np.float32(0.001)
    shape = (N_HEADS, t) if route == "att" else (t,)
    scores = (rng.random(shape) - 0.2).astype(np.float32)
    scores[..., target + 1:] = 0
    error = np.full(shape[:-1], 0.001 * (layer + 1), np.float32)
    if route == "layer" and (layer, target) == FLAGGED:
        error = np.float32(0.05)
    return scores, scores.sum(-1).astype(np.float32), error


def fill(result: LayerAttribution, route: str, baseline: str, layer: int, target: int) -> None:
    cols = result.route(route, layer, baseline, create=True)
    cols.scores[target], cols.expected[target], cols.error[target] = column(route, baseline, layer, target)


def make_flow_result(targets=COMPUTED, layers=(0, 1, 2), extra=True) -> LayerAttribution:
    result = LayerAttribution(tokens=flow_tokens(), n_layers=N_LAYERS, n_heads=N_HEADS, hidden_size=HIDDEN,
                              options=dict(OPTIONS), text="The cat", model_id="fake-lig")
    for layer in layers:
        for j in targets:
            for route in ("layer", "att", "mlp"):
                fill(result, route, result.baseline(route), layer, j)
    if extra:
        fill(result, "att", "itb_map_ratio", 1, 5)
    return result


class FakeLigSession:
    """The LigSession contract (result, handle, options, ensure) with scripted delays, failures and a gate.

    delays: {(route, layer, target): seconds}; fail: {(route, layer, target): exception}.
    """

    def __init__(self, delays=None, fail=None, gate: threading.Event | None = None, result=None):
        self.result = result or make_flow_result(targets=[], extra=False)
        self.result.session = self
        self.handle = object()
        self.options = dict(OPTIONS)
        self.delays = delays or {}
        self.fail = dict(fail or {})
        self.gate = gate
        self.calls: list[tuple] = []
        self.cancelled: list[tuple] = []
        self.lock = threading.Lock()

    def ensure(self, route, layer, target, *, baseline=None, head=None, cancel=None):
        key = (route, layer, target)
        with self.lock:
            self.calls.append((*key, baseline))
        if self.gate is not None:
            self.gate.wait(10)
        deadline = time.monotonic() + self.delays.get(key, 0.0)
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                self.cancelled.append(key)
                raise ComputationCancelled("cancelled")
            time.sleep(0.005)
        if key in self.fail:
            raise self.fail[key]
        cols = self.result.route(route, layer, baseline or self.result.baseline(route))
        if cols is None or not cols.has(target):
            fill(self.result, route, baseline or self.result.baseline(route), layer, target)
