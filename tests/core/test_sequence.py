"""Chat segments, forced targets, token records."""

import attrwidgets as aw
from attrwidgets.core.token.session import AttributionSession

CHAT = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is the capital of France?"}]


def test_chat_segments_follow_the_template(tiny):
    s = AttributionSession(tiny, CHAT, target=" Paris")
    segs = [t.segment for t in s.tokens]
    text = {seg: "".join(t.clean for t in s.tokens if t.segment == seg) for seg in set(segs)}
    assert "Answer briefly." in text["system"] and "capital of France?" in text["user"]
    assert text["assistant"].startswith("<|im_start|>assistant")  # the generation prompt
    assert text["generated"] == " Paris"
    order = [s for i, s in enumerate(segs) if i == 0 or segs[i - 1] != s]
    assert order == ["system", "user", "assistant", "generated"]
    assert all(t.special for t in s.tokens if t.text in ("<|im_start|>", "<|im_end|>"))
    assert not any(t.special for t in s.tokens if t.segment == "user" and "France" in t.clean)
    # the rendered prompt is the tokenizer's own template, not a hard-coded one
    assert s.sequence.prompt_text == tiny.tokenizer.apply_chat_template(CHAT, add_generation_prompt=True,
                                                                        tokenize=False)


def test_forced_target_is_attributed_token_by_token(tiny):
    s = AttributionSession(tiny, "The capital of France is", target=" Paris. Rome")
    assert "".join(t.clean for t in s.tokens[s.sequence.n_prompt:]) == " Paris. Rome"
    assert s.target_positions == list(range(s.sequence.n_prompt, len(s.tokens)))


def test_clean_text_reassembles_the_prompt(tiny):
    s = AttributionSession(tiny, "the cat sat on the mat", target=" and")
    assert "".join(t.clean for t in s.tokens).strip() == "the cat sat on the mat and"


def test_plain_prompt_segment(tiny):
    r = aw.attribute(tiny, "one two", method="saliency", max_new_tokens=1, progress=False)
    assert {t.segment for t in r.tokens} == {"prompt", "generated"}
