"""Word aggregation: SentencePiece "▁", byte-level BPE "Ġ"/"Ċ" and plain pieces, hand-computed sums."""

from __future__ import annotations

import numpy as np

from attrwidgets.core.token.result import Attribution
from attrwidgets.core.token.result_io import load_result, to_dataframe
from attrwidgets.core.token.words import aggregate_words, tokenizer_style, word_spans
from attrwidgets.core.tokens import Token

NAN = np.nan


def tok(text: str, segment: str = "prompt", special: bool = False, clean: str | None = None) -> Token:
    if clean is None:
        clean = text if special else text.replace("▁", " ").replace("Ġ", " ").replace("Ċ", "\n")
    return Token(len(text), text, clean, segment, special)


def sentencepiece_example() -> Attribution:
    # "<s> unbelievable story" -> generated " Great": words <s> | unbelievable | story | Great
    tokens = [
        tok("<s>", special=True),
        tok("▁un"),
        tok("believ"),
        tok("able"),
        tok("▁story"),
        tok("▁Gre", "generated"),
        tok("at", "generated"),
    ]
    scores = np.array([[0.5, 1, 2, 3, 4, 0, 0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0]], dtype=np.float32)
    return Attribution(
        tokens,
        [5, 6],
        scores,
        "integrated_gradients",
        target_prob=[0.9, 0.8],
        completeness_error=[0.01, 0.02],
        per_dim=np.ones((2, 7, 3)),
        attention=np.ones((2, 1, 1, 7)),
    )


def byte_bpe_example() -> Attribution:
    # chat: <|im_start|> | Hello | world | \n | How | <|im_end|> || Hi | there! ; targets Hi, Ġthere, !
    tokens = [
        tok("<|im_start|>", "user", True),
        tok("Hello", "user"),
        tok("Ġwor", "user"),
        tok("ld", "user"),
        tok("Ċ", "user"),
        tok("How", "user"),
        tok("<|im_end|>", "user", True),
        tok("Hi", "assistant"),
        tok("Ġthere", "assistant"),
        tok("!", "assistant"),
    ]
    scores = np.array(
        [
            [1, 2, 3, 4, 5, 6, 7, 0, 0, 0],
            [NAN] * 10,  # not computed yet
            [1, 1, 2, 2, 1, 1, 1, 3, 4, 0],
        ],
        dtype=np.float32,
    )
    return Attribution(tokens, [7, 8, 9], scores, "saliency")


def test_sentencepiece_words_and_hand_computed_sums():
    a = sentencepiece_example()
    assert tokenizer_style(a.tokens) == "sentencepiece"
    w = aggregate_words(a)
    assert [t.clean for t in w.tokens] == ["<s>", " unbelievable", " story", " Great"]
    assert [t.text for t in w.tokens] == ["<s>", "▁unbelievable", "▁story", "▁Great"]
    assert w.tokens[0] == a.tokens[0] and w.tokens[1].id == -1  # one piece keeps its id, a merge has none
    # columns summed per word: [<s>, un+believ+able, story, Gre+at]
    np.testing.assert_allclose(w.scores, [[0.5, 6, 4, 0], [0.1, 0.9, 0.5, 0.6]], rtol=1e-6)
    assert w.target_positions == [3, 3]  # both pieces of " Great" map to word 3; rows stay per piece
    np.testing.assert_allclose(w.scores.sum(axis=1), a.scores.sum(axis=1), rtol=1e-6)  # completeness kept
    np.testing.assert_array_equal(w.target_prob, a.target_prob)
    np.testing.assert_array_equal(w.completeness_error, a.completeness_error)
    assert w.per_dim is None and w.attention is None
    assert w.options["aggregated"] == "words"
    assert w.options["word_spans"] == [[0, 1], [1, 4], [4, 5], [5, 7]]
    assert a.n_positions == 7 and a.per_dim is not None  # the original is untouched


def test_byte_bpe_words_and_hand_computed_sums():
    a = byte_bpe_example()
    assert tokenizer_style(a.tokens) == "byte_bpe"
    w = a.aggregate_words()
    assert [t.clean for t in w.tokens] == [
        "<|im_start|>",
        "Hello",
        " world",
        "\n",
        "How",
        "<|im_end|>",
        "Hi",
        " there!",
    ]
    assert [t.segment for t in w.tokens] == ["user"] * 6 + ["assistant"] * 2
    assert w.target_positions == [6, 7, 7]
    # columns: [im_start, Hello, wor+ld, Ċ, How, im_end, Hi, there+!]
    np.testing.assert_array_equal(w.scores[0], [1, 2, 7, 5, 6, 7, 0, 0])
    assert np.isnan(w.scores[1]).all()  # a row not computed stays NaN, never becomes zeros
    np.testing.assert_array_equal(w.scores[2], [1, 1, 4, 1, 1, 1, 3, 4])


def test_plain_pieces_use_clean_whitespace():
    tokens = [tok("The"), tok(" cat"), tok("s"), tok(" sat"), tok("\n"), tok("Then")]
    assert tokenizer_style(tokens) == "plain"
    assert word_spans(tokens) == [(0, 1), (1, 3), (3, 4), (4, 5), (5, 6)]


def test_never_merges_across_segments_or_specials():
    tokens = [
        tok("Ġcat"),
        tok("s", "generated"),
        tok("<s>", special=True),
        tok("x"),
        tok("<a>", special=True),
        tok("<b>", special=True),
        tok("Ġy"),
    ]
    # "s" has no word mark but starts the generated segment; specials stand alone even when unmarked
    # pieces follow them
    assert word_spans(tokens) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7)]


def test_sentencepiece_byte_fallback_newline_is_its_own_word():
    tokens = [tok("▁Hi"), tok("<0x0A>", clean="\n"), tok("Next"), tok("▁one")]
    assert word_spans(tokens) == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_idempotent_and_survives_save_load(tmp_path):
    w = aggregate_words(byte_bpe_example())
    assert aggregate_words(w) is w
    w.save(tmp_path / "words.json")
    back = load_result(tmp_path / "words.json")
    assert back.tokens == w.tokens and back.target_positions == w.target_positions
    assert back.options == w.options
    np.testing.assert_array_equal(back.scores, w.scores)


def test_dataframe_of_words_includes_own_word_column():
    w = aggregate_words(sentencepiece_example())
    df = to_dataframe(w)
    # each target row covers words 0..3 inclusive: its own word holds the earlier piece ("▁Gre" -> "at")
    assert len(df) == 2 * 4
    own = df[(df.target_index == 1) & (df.source_position == 3)].score.item()
    np.testing.assert_allclose(own, 0.6, rtol=1e-6)
