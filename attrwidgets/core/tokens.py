"""Token records shared by results, widgets and exports."""

from __future__ import annotations

from dataclasses import asdict, dataclass

SEGMENTS = ("system", "user", "assistant", "prompt", "generated")


@dataclass(frozen=True)
class Token:
    """One position of the attributed sequence.

    id: vocabulary id. text: the tokenizer's own piece ("Ġthe", "▁the", "<|im_end|>").
    clean: the text it decodes to in context (" the"). segment: one of SEGMENTS; "prompt" is a plain
    (non-chat) prompt, chat prompts use the role of the message the token belongs to.
    special: a tokenizer special token (chat markers, BOS/EOS); the view can hide these.
    """

    id: int
    text: str
    clean: str
    segment: str
    special: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Token:
        return cls(int(d["id"]), str(d["text"]), str(d["clean"]), str(d["segment"]), bool(d["special"]))
