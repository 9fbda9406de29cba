"""Turn a prompt (string or chat messages) plus a greedy or forced continuation into token records.

Chat messages are rendered with the tokenizer's own chat template (never a hard-coded one) and each token
is labelled with the role of the message it falls in, found from character offsets: the template is
rendered for messages[:k] and the text grown by message k belongs to it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch
from jinja2 import TemplateError

from attrwidgets.core.tokens import Token
from attrwidgets.errors import AttrWidgetsError


@dataclass
class PreparedSequence:
    input_ids: torch.Tensor  # (T,) prompt then continuation
    tokens: list[Token]
    n_prompt: int
    prompt_text: str

    @property
    def target_positions(self) -> list[int]:
        return list(range(self.n_prompt, len(self.tokens)))

    @property
    def target_ids(self) -> list[int]:
        return self.input_ids[self.n_prompt :].tolist()


def _render_chat(tokenizer, messages) -> tuple[str, list[tuple[int, int, str]]]:
    if not messages:
        raise AttrWidgetsError("The chat has no messages: pass at least one {'role': 'user', 'content': ...}.")
    for m in messages:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise AttrWidgetsError(f"Chat messages must be dicts with 'role' and 'content'; got {m!r}.")
    if not any(str(m["content"]).strip() for m in messages):
        raise AttrWidgetsError("Every chat message is empty: give at least one message some text.")
    if getattr(tokenizer, "chat_template", None) is None:
        raise AttrWidgetsError("This tokenizer has no chat template: pass a plain string prompt instead.")
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    spans, start = [], 0
    for k, message in enumerate(messages):
        prefix = tokenizer.apply_chat_template(messages[: k + 1], add_generation_prompt=False, tokenize=False)
        end = len(prefix) if text.startswith(prefix) else start
        # A template that prepends a default system prompt puts it before the first message's span.
        spans.append((start, end, str(message["role"])))
        start = end
    spans.append((start, len(text), "assistant"))  # the generation prompt
    return text, _split_injected_system(tokenizer, text, spans, messages)


_SENTINEL = "\u2063attrwidgets-sentinel\u2063"


def _split_injected_system(tokenizer, text, spans, messages):
    """Templates like SmolLM2's and Qwen2's add a default system prompt when the chat has none; it lands in
    the first message's span. Learn the template's system block shape from a sentinel message and label
    such a block before the first message's content "system"."""
    if not spans or messages[0].get("role") == "system":
        return spans
    try:
        probe = tokenizer.apply_chat_template([{"role": "system", "content": _SENTINEL}], tokenize=False)
    except (TemplateError, ValueError, TypeError):  # a template that rejects a lone system message
        return spans
    head, _, tail = probe.partition(_SENTINEL)
    start, end, role = spans[0]
    block_start = text.find(head, start, end) if head.strip() else -1
    block_end = text.find(tail, block_start + len(head), end) if block_start >= 0 and tail.strip() else -1
    if block_start < 0 or block_end < 0:
        return spans
    block_end += len(tail)
    injected = [(start, block_start, role)] if block_start > start else []
    return injected + [(block_start, block_end, "system"), (block_end, end, role)] + spans[1:]


def _segment_at(offset: int, spans, first_role: str) -> str:
    for start, end, role in spans:
        if start <= offset < end:
            return role
    return first_role


def clean_texts(tokenizer, ids: list[int]) -> list[str]:
    """Each token's text as it reads in context, from growing decodes (keeps '▁'/'Ġ' spaces right)."""
    out, previous = [], ""
    for k in range(len(ids)):
        current = tokenizer.decode(ids[: k + 1], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if current.startswith(previous) and "\ufffd" not in current[len(previous):]:
            out.append(current[len(previous):])
        else:  # a split multi-byte character: fall back to the piece on its own
            out.append(tokenizer.decode([ids[k]], skip_special_tokens=False))
        previous = current
    return out


def encode_prompt(tokenizer, prompt) -> tuple[list[int], list[str], str]:
    """-> ids, per-token segment, the text that was tokenized."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise AttrWidgetsError("The prompt is empty: pass some text, or a list of chat messages.")
        enc = tokenizer(prompt, add_special_tokens=True)
        return list(enc["input_ids"]), ["prompt"] * len(enc["input_ids"]), prompt
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(t, (int, np.integer)) for t in prompt):
        ids = [int(t) for t in prompt]  # token ids, used as they are (no special tokens added)
        bad = [t for t in ids if not 0 <= t < len(tokenizer)]
        if bad:
            raise AttrWidgetsError(f"Token id {bad[0]} is outside the vocabulary (0..{len(tokenizer) - 1}): pass ids "
                                   "from this model's tokenizer.")
        return ids, ["prompt"] * len(ids), tokenizer.decode(ids)
    if isinstance(prompt, (list, tuple)):
        text, spans = _render_chat(tokenizer, list(prompt))
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        first_role = spans[0][2]
        segments = [_segment_at(start, spans, first_role) for start, _ in enc["offset_mapping"]]
        return list(enc["input_ids"]), segments, text
    raise AttrWidgetsError(
        f"prompt must be a string, a list of chat messages (dicts with role/content) or a list of token ids; got "
        f"{type(prompt).__name__}."
    )


def eos_ids(handle) -> set[int]:
    ids = set()
    for source in (handle.tokenizer.eos_token_id, getattr(handle.model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple)):
            ids.update(int(i) for i in source)
    return ids


@torch.no_grad()
def greedy_continue(handle, ids: list[int], max_new_tokens: int) -> list[int]:
    """Greedy decoding with a KV cache; stops after an end-of-sequence token (kept as a target)."""
    model, eos = handle.model, eos_ids(handle)
    current = torch.tensor([ids], device=handle.device)
    # transformers >= 5.2x names the KV cache `cache` and warns on `past_key_values` (and older releases
    # only know `past_key_values`): pass whichever this model's forward declares.
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    past, out = None, []
    for _ in range(max_new_tokens):
        logits_out = model(input_ids=current, use_cache=True, **{cache_arg: past})
        past = getattr(logits_out, cache_arg)
        nxt = int(logits_out.logits[0, -1].argmax())
        out.append(nxt)
        if nxt in eos:
            break
        current = torch.tensor([[nxt]], device=handle.device)
    return out


def prepare_sequence(handle, prompt, *, max_new_tokens: int = 8, target: str | None = None,
                     min_new_tokens: int = 1) -> PreparedSequence:
    """min_new_tokens=0 lets max_new_tokens=0 mean "the prompt alone" (DePass decomposes any sequence). A
    PreparedSequence is taken as it is: an aw.Source generated it once for every view that shares it."""
    if isinstance(prompt, PreparedSequence):
        return prompt
    tokenizer = handle.tokenizer
    ids, segments, text = encode_prompt(tokenizer, prompt)
    if target is not None:
        if not isinstance(target, str):
            raise AttrWidgetsError(f"target must be a continuation string; got {type(target).__name__}.")
        continuation = tokenizer(target, add_special_tokens=False)["input_ids"]
        if not continuation:
            raise AttrWidgetsError(f"target {target!r} tokenizes to nothing: give a non-empty continuation.")
        n_new = len(continuation)
    else:
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < min_new_tokens:
            kind = "a positive" if min_new_tokens >= 1 else "a non-negative"
            raise AttrWidgetsError(f"max_new_tokens must be {kind} integer; got {max_new_tokens!r}.")
        n_new = max_new_tokens
    limit = handle.max_context
    if len(ids) + n_new > limit:
        raise AttrWidgetsError(
            f"The prompt has {len(ids)} tokens and {n_new} more are to be generated, beyond the model's "
            f"context of {limit} tokens: shorten the prompt or lower max_new_tokens."
        )
    if target is None:
        continuation = greedy_continue(handle, ids, n_new) if n_new else []
    all_ids = ids + list(continuation)
    cleans = clean_texts(tokenizer, all_ids)
    pieces = tokenizer.convert_ids_to_tokens(all_ids)
    special = set(tokenizer.all_special_ids)
    segments = segments + ["generated"] * len(continuation)
    tokens = [Token(int(i), str(p), c, s, int(i) in special) for i, p, c, s in zip(all_ids, pieces, cleans, segments)]
    return PreparedSequence(torch.tensor(all_ids), tokens, len(ids), text)


def check_row(row, n: int) -> int:
    """A target row index (negative counts from the end) -> 0..n-1, or a clear error."""
    if isinstance(row, bool) or not isinstance(row, (int, np.integer)) or not -n <= row < n:
        raise AttrWidgetsError(f"Target row {row!r} does not exist: there are {n} targets (0..{n - 1}).")
    return int(row) % n


def contrast_token_id(tokenizer, contrast) -> int | None:
    if contrast is None:
        return None
    if isinstance(contrast, int):
        if not 0 <= contrast < len(tokenizer):
            raise AttrWidgetsError(f"contrast token id {contrast} is outside the vocabulary (0..{len(tokenizer) - 1}).")
        return contrast
    ids = tokenizer(str(contrast), add_special_tokens=False)["input_ids"]
    if not ids:
        raise AttrWidgetsError(f"contrast {contrast!r} tokenizes to nothing: give a token such as ' Rome'.")
    if len(ids) > 1:
        raise AttrWidgetsError(
            f"contrast {contrast!r} is {len(ids)} tokens {tokenizer.convert_ids_to_tokens(ids)}: give a single "
            "token (mind the leading space) or a token id."
        )
    return ids[0]
