"""Files the bad-input rows write into their own temporary folder (tests/core/bad_inputs.py and its parts)."""

from __future__ import annotations

from pathlib import Path


def file_in(tmp: Path, name: str, text: str | bytes) -> Path:
    path = tmp / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def folder_in(tmp: Path, name: str) -> Path:
    (tmp / name).mkdir(exist_ok=True)
    return tmp / name
