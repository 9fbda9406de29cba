"""Merge subword tokens into whitespace-delimited words for reading attributions at word level."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from attrwidgets.core.tokens import Token

if TYPE_CHECKING:  # words are made with dataclasses.replace: no import of the class at run time
    from attrwidgets.core.token.result import Attribution

SENTENCEPIECE_MARK = "▁"  # SentencePiece (llama, mistral, gemma): "▁the" = " the"
BYTE_BPE_MARKS = ("Ġ", "Ċ")  # byte-level BPE (gpt2, qwen2, smollm2): "Ġthe" = " the", "Ċ" = "\n"


def tokenizer_style(tokens: list[Token]) -> str:
    """Tokenizer style, guessed from the pieces' own text: "sentencepiece", "byte_bpe" or "plain".

    Looked up on the pieces rather than the model name: a result loaded from a file has no tokenizer.
    Special tokens are skipped, their text ("<|im_start|>") says nothing about the scheme.
    """
    pieces = [t.text for t in tokens if not t.special]
    if any(p.startswith(SENTENCEPIECE_MARK) for p in pieces):
        return "sentencepiece"
    if any(p.startswith(BYTE_BPE_MARKS) for p in pieces):
        return "byte_bpe"
    return "plain"


def _starts_word(t: Token, style: str) -> bool:
    if style == "sentencepiece" and t.text.startswith(SENTENCEPIECE_MARK):
        return True
    if style == "byte_bpe" and t.text.startswith(BYTE_BPE_MARKS):
        return True
    # also for marked styles: byte-fallback pieces such as "<0x0A>" carry no mark but decode to "\n"
    return t.clean[:1].isspace()


def word_spans(tokens: list[Token]) -> list[tuple[int, int]]:
    """[start, end) token ranges of the words, in order, covering every position exactly once.

    A new word starts at a piece that starts with the style's word mark (or whose clean text starts with
    whitespace), after a newline (the piece after "Ċ" has no mark but is a new word), at a segment change
    (a word never spans prompt and generated text, or two chat roles), and at and after a special token
    (each special token is a word of its own).
    """
    style = tokenizer_style(tokens)
    starts = []
    for i, t in enumerate(tokens):
        prev = tokens[i - 1] if i else None
        if (
            prev is None
            or t.special
            or prev.special
            or t.segment != prev.segment
            or prev.clean.endswith("\n")
            or _starts_word(t, style)
        ):
            starts.append(i)
    return list(zip(starts, starts[1:] + [len(tokens)]))


def _merge_tokens(pieces: list[Token]) -> Token:
    if len(pieces) == 1:
        return pieces[0]
    # no single vocabulary id names a multi-piece word: -1, as for tokens read from files without ids
    return Token(
        id=-1,
        text="".join(p.text for p in pieces),
        clean="".join(p.clean for p in pieces),
        segment=pieces[0].segment,
        special=False,
    )


def aggregate_words(a: Attribution) -> Attribution:
    """Word-level copy of `a`: source columns merged per word, target rows kept per target token.

    Sources: a word's score is the SUM of its pieces' scores. Summing keeps every row total, so IG
    completeness (sum over sources = f(x) - f(x')) and its completeness_error still hold; for norm-based
    methods (saliency) the sum is an upper bound on the norm over the word's pieces.

    Targets: rows are NOT merged. Each row still explains one generated token, so target_prob,
    target_entropy and completeness_error keep their meaning; target_positions[i] becomes the index of the
    word holding target i, so two targets in one word share a position. The causal rule then reads
    scores[i, p] = 0 for p > target_positions[i]: the target's own word column holds the contributions of
    the earlier pieces of that word (the piece itself contributes nothing).

    per_dim and attention are per piece and are dropped (None). options gains "aggregated": "words" and
    "word_spans" ([start, end) token ranges in the original result). NaN rows (not computed) stay NaN.
    Aggregating a result that is already word-level returns it unchanged.
    """
    if a.options.get("aggregated") == "words":
        return a
    spans = word_spans(a.tokens)
    word_of = np.empty(a.n_positions, dtype=np.int64)
    for w, (start, end) in enumerate(spans):
        word_of[start:end] = w
    if spans:
        # reduceat sums each contiguous span; a NaN row stays NaN (np.nansum would turn it into zeros)
        scores = np.add.reduceat(a.scores, [s for s, _ in spans], axis=1)
    else:
        scores = a.scores.copy()
    return replace(
        a,
        tokens=[_merge_tokens(a.tokens[s:e]) for s, e in spans],
        target_positions=[int(word_of[p]) for p in a.target_positions],
        scores=scores,
        options={**a.options, "aggregated": "words", "word_spans": [[s, e] for s, e in spans]},
        per_dim=None,
        attention=None,
    )
