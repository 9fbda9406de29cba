"""A tiny model saved as a folder (what a Ray worker loads by path) and a small dataset for the
aw.attribute_dataset tests."""

from __future__ import annotations

from pathlib import Path

from attrwidgets.testing import tiny_handle

TEXTS = ["The capital of France is", "one two three four", "the cat sat on the mat", "What is the capital",
         "Paris is the capital of France.", "five six seven"]


def tiny_model_folder(folder: Path) -> Path:
    h = tiny_handle("llama")
    h.model.save_pretrained(folder)
    h.tokenizer.save_pretrained(folder)
    return folder


def records(n: int = len(TEXTS)) -> list[dict]:
    return [{"id": f"ex{i}", "text": TEXTS[i % len(TEXTS)]} for i in range(n)]
