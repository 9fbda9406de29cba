"""The logit nodes of a graph: the top logits by probability, or the targets a user names.

Default (circuit-tracer's rule): the top max_logits tokens by probability at the last position, cut at the
first k whose cumulative probability reaches logit_prob. A logit row measures the demeaned logit (unembedding
row minus its vocabulary mean, so a shift shared by every logit counts for nothing) with the final norm frozen.
Named targets: a token id, a token string (one token), or a pair (a, b) for the contrast logit(a) - logit(b)
(the mean cancels). Each logit node's weight in the influence is its probability (a contrast: that of a).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attrwidgets.core.frozen import FrozenForward
from attrwidgets.core.sequence import contrast_token_id
from attrwidgets.errors import AttrWidgetsError


@dataclass
class LogitTargets:
    ids: torch.Tensor  # (n,) vocab id a
    contrast: torch.Tensor  # (n,) vocab id b of logit(a) - logit(b), or -1
    directions: torch.Tensor  # (n, D) in the final norm's output space
    probabilities: torch.Tensor  # (n,) p(a)
    weights: torch.Tensor  # (n,) the logit nodes' weights in the influence
    values: torch.Tensor  # (n,) the target values on the prompt (demeaned logit or the contrast)
    labels: list[str]


def _token_id(tokenizer, item) -> int:
    if isinstance(item, bool):
        raise AttrWidgetsError(f"A target must be a token id, a token string or a pair (a, b); got {item!r}.")
    if isinstance(item, str) and item.startswith("#") and item[1:].isdigit():
        item = int(item[1:])
    try:
        return contrast_token_id(tokenizer, item)
    except AttrWidgetsError as exc:
        raise AttrWidgetsError(str(exc).replace("contrast", "target")) from None


def parse_targets(tokenizer, targets) -> list[tuple[int, int]]:
    if isinstance(targets, (str, int)) or (isinstance(targets, tuple) and len(targets) == 2
                                           and not isinstance(targets[0], (tuple, list))):
        targets = [targets]
    if not isinstance(targets, (list, tuple)) or not targets:
        raise AttrWidgetsError("targets must be None or a non-empty list of token ids, token strings or pairs (a, b).")
    out = []
    for item in targets:
        if isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise AttrWidgetsError(f"A contrast target is a pair (a, b) for logit(a) - logit(b); got {item!r}.")
            a, b = (_token_id(tokenizer, x) for x in item)
            if a == b:
                raise AttrWidgetsError(f"The contrast {item!r} compares a token with itself: give two different tokens.")
            out.append((a, b))
        else:
            out.append((_token_id(tokenizer, item), -1))
    return out


def select_logits(handle, frozen: FrozenForward, targets, *, max_logits: int, logit_prob: float) -> LogitTargets:
    T = frozen.length
    logits = frozen.real_logits(T - 1)
    probs = torch.softmax(logits, -1)
    unembed = frozen.unembedding().weight  # (V, D)
    mean = unembed.mean(0)
    if targets is None:
        top_p, top_ids = probs.topk(min(max_logits, probs.numel()))
        k = int(torch.searchsorted(top_p.cumsum(0), torch.tensor(logit_prob))) + 1
        pairs = [(int(i), -1) for i in top_ids[:k]]
    else:
        pairs = parse_targets(handle.tokenizer, targets)
    ids = torch.tensor([a for a, _ in pairs])
    contrast = torch.tensor([b for _, b in pairs])
    device = unembed.device
    a_rows = unembed[ids.to(device)]
    b_rows = torch.where((contrast >= 0).to(device).unsqueeze(1), unembed[contrast.clamp(min=0).to(device)],
                         mean.expand_as(a_rows))
    directions = a_rows - b_rows
    values = directions @ frozen.final_out[T - 1].to(device)
    p = probs[ids]
    weights = p if float(p.sum()) > 0 else torch.full_like(p, 1 / len(p))

    def text(i: int) -> str:
        return handle.tokenizer.decode([i], skip_special_tokens=False, clean_up_tokenization_spaces=False)

    labels = [text(a) if b < 0 else f"{text(a)} - {text(b)}" for a, b in pairs]
    return LogitTargets(ids, contrast, directions, p, weights, values.cpu(), labels)
