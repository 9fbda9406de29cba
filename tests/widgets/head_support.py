"""Test material for HeadGrid: HeadContributions built by hand (numpy) and a scriptable fake HeadSession."""

from __future__ import annotations

import threading
import time

import numpy as np

from attrwidgets.core.depass.result import HeadContributions
from attrwidgets.core.forward import ComputationCancelled
from attrwidgets.core.tokens import Token

from .support import HOSTILE

N_LAYERS, N_HEADS = 3, 4


def head_tokens() -> list[Token]:
    return [
        Token(1, "The", "The", "prompt"),
        Token(2, "Ġcat", " cat", "prompt"),
        Token(3, "Ċ", "\n", "prompt"),  # a newline token: must stay clickable in the view
        Token(4, HOSTILE, HOSTILE, "prompt"),
        Token(5, "Ġ", " ", "prompt"),  # a lone space
        Token(6, "Ġsat", " sat", "generated"),
        Token(7, "Ġon", " on", "generated"),
        Token(8, "Ġmat", " mat", "generated"),
    ]


HEAD_TARGETS = [5, 6, 7]


def causal_attention(n_tokens: int, seed: int = 0) -> np.ndarray:
    """(L, H, T, T) causal softmax patterns; head 0 of every layer attends to the previous token."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(N_LAYERS, N_HEADS, n_tokens, n_tokens)) * 2
    logits[:, :, np.triu_indices(n_tokens, 1)[0], np.triu_indices(n_tokens, 1)[1]] = -np.inf
    a = np.exp(logits - logits.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    a[:, 0] = np.eye(n_tokens, k=-1)
    a[:, 0, 0, 0] = 1.0
    return a.astype(np.float32)


def expected_contributions(row: int) -> np.ndarray:
    base = np.arange(N_LAYERS * N_HEADS, dtype=np.float32).reshape(N_LAYERS, N_HEADS) - 5.0
    return base * (row + 1) * 0.1


def make_head_result(position: int = 4, tokens: list[Token] | None = None, row: int | None = None,
                     attention: np.ndarray | None = None) -> HeadContributions:
    tokens = tokens or head_tokens()
    t = len(tokens)
    attention = causal_attention(t) if attention is None else attention
    contributions = expected_contributions(position if row is None else row)
    per_source = attention[:, :, position, :] * contributions[:, :, None]
    return HeadContributions(
        tokens=tokens, position=position, target_id=tokens[min(position + 1, t - 1)].id, target_text=" sat",
        contributions=contributions, per_source=per_source, attention=attention,
        stream=np.zeros(N_LAYERS, np.float32), bias=np.zeros(N_LAYERS, np.float32),
        logit=float(contributions.sum()), completeness_error=1e-6, options={"mlp_rule": "softmax"},
        model_id="fake-heads", prompt="The cat",
    )


class FakeHeadSession:
    """The HeadSession contract with scripted delays (per row), failures and a gate."""

    model_id = "fake-heads"
    prompt_text = "The cat"

    def __init__(self, delays=None, fail=None, gate: threading.Event | None = None):
        self.tokens = head_tokens()
        self.target_positions = list(HEAD_TARGETS)
        self.query_positions = [p - 1 for p in HEAD_TARGETS]
        self.n_layers, self.n_heads = N_LAYERS, N_HEADS
        self.attention = causal_attention(len(self.tokens))
        self.delays = delays or {}
        self.fail = dict(fail or {})
        self.gate = gate
        self.calls: list[int] = []
        self.cancelled: list[int] = []
        self.lock = threading.Lock()

    def contributions(self, row, *, cancel=None, progress=False):
        with self.lock:
            self.calls.append(row)
        if self.gate is not None:
            self.gate.wait(10)
        deadline = time.monotonic() + self.delays.get(row, 0.0)
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                self.cancelled.append(row)
                raise ComputationCancelled("cancelled")
            time.sleep(0.01)
        if row in self.fail:
            raise self.fail[row]
        return make_head_result(self.query_positions[row], self.tokens, row=row, attention=self.attention)
