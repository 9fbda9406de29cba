"""Real English prompts with no download: sentences of the Python language reference that ships with CPython
(pydoc_data.topics), the first n of 6-20 words, in a fixed order."""

from __future__ import annotations

import re


def prompts(n: int) -> list[str]:
    from pydoc_data.topics import topics

    out = []
    for name in sorted(topics):
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(topics[name].split())):
            words = sentence.split()
            if 6 <= len(words) <= 20 and re.fullmatch(r"[A-Za-z ,;'()-]+\.", sentence):
                out.append(sentence)
                if len(out) == n:
                    return out
    return out
