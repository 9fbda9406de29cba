"""The GraphView's target rows: which graph a selected target row (a token of the source's continuation) asks for.

Every live view shares its source's rows (docs/architecture.md, "Selection"): row i is the token at
target_positions[i]. A graph explains the logits at the last position of its prompt, so the graph of row i is the
graph of the prefix tokens[:target_positions[i]]. With a greedy continuation that token is the prefix's top logit,
so the prefix's own logit targets include it, and the row whose prefix is the prompt is the prompt's graph itself
(nothing to rebuild). A forced continuation's token may be no top logit: its row explains that token alone.
"""

from __future__ import annotations

from typing import Any

from attrwidgets.widgets.graph_payload import graph_tokens


class TargetRows:
    """source: the aw.Source the view was built on (None: a graph alone, no rows); graph: its first graph."""

    def __init__(self, source: Any, graph: Any) -> None:
        self.source = source
        self.n_prompt = len(graph.token_ids)
        self.positions: list[int] = list(source.target_positions) if source is not None else []
        generation = getattr(source, "generation", None) or {}
        self.forced = source is not None and not generation.get("greedy", True)

    def graph_key(self, row: int, targets: tuple) -> tuple:
        """(prompt length, targets key) of the graph row `row` (-1: the prompt's) asks for, `targets` typed."""
        if not 0 <= row < len(self.positions):
            return (self.n_prompt, targets)
        length = self.positions[row]
        if not targets and self.forced:
            targets = (self.token_id(length),)
        return (length, targets)

    def token_id(self, position: int) -> int:
        return int(self.source.sequence.input_ids[position])

    def prompt_ids(self, length: int) -> list[int]:
        """The first `length` token ids of the source's sequence (its prompt, then its continuation)."""
        return [int(i) for i in self.source.sequence.input_ids[:length].tolist()]

    def rebuild_keywords(self, key: tuple) -> dict:
        """graph.rebuild's keywords for graph key `key` (besides progress and cancel)."""
        length, targets = key
        if length == self.n_prompt:
            return {"targets": list(targets)}
        return {"prompt": self.prompt_ids(length), "targets": list(targets) if targets else None}

    def tokens(self, graph: Any) -> list[dict]:
        """The token records of a graph's prompt: the source's own (segments, specials) where there is one."""
        if self.source is None:
            return graph_tokens(graph)
        return [t.to_dict() for t in self.source.tokens[: len(graph.token_ids)]]
