"""A graph's prompt -> token ids, with circuit-tracer's conventions (docs/methods/graph.md).

A string or chat messages are tokenised as the other methods do (core/sequence.py); a BOS token is prepended
unless the first id is already special, because position 0 carries no nodes (it is the attention sink whose
MLP outputs are constants) and should be a token nobody asked to explain. A list of ids is used as it is.
"""

from __future__ import annotations

import torch

from attrwidgets.core.sequence import clean_texts, encode_prompt
from attrwidgets.errors import AttrWidgetsError


def prompt_ids(handle, prompt) -> tuple[torch.Tensor, str]:
    """-> (T,) ids and the prompt's text."""
    tokenizer = handle.tokenizer
    if isinstance(prompt, torch.Tensor):
        prompt = prompt.reshape(-1).tolist()
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(i, int) and not isinstance(i, bool)
                                                            for i in prompt):
        ids = list(prompt)
        bad = [i for i in ids if not 0 <= i < len(tokenizer)]
        if bad:
            raise AttrWidgetsError(f"Token ids {bad[:5]} are outside the vocabulary (0..{len(tokenizer) - 1}).")
        text = tokenizer.decode(ids, skip_special_tokens=False)
    else:
        if isinstance(prompt, (list, tuple)) and not prompt:
            raise AttrWidgetsError("The prompt is empty: pass some text, chat messages or a list of token ids.")
        ids, _, text = encode_prompt(tokenizer, prompt)
        if not ids:
            raise AttrWidgetsError("The prompt tokenizes to nothing: pass some text.")
        special = set(tokenizer.all_special_ids)
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if ids[0] not in special and bos is not None:
            ids = [int(bos)] + ids
    if len(ids) < 2:
        raise AttrWidgetsError(
            "The prompt has a single token: a graph needs at least one token after position 0 (which has no "
            "feature nodes). Give a longer prompt.")
    limit = handle.max_context
    if len(ids) > limit:
        raise AttrWidgetsError(
            f"The prompt has {len(ids)} tokens, beyond the model's context of {limit}: shorten it.")
    return torch.tensor(ids, dtype=torch.long), text


def token_texts(handle, ids: torch.Tensor) -> list[str]:
    return clean_texts(handle.tokenizer, ids.tolist())
