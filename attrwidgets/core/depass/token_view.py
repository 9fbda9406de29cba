"""A token-level Decomposition as an Attribution, so that the TokenMatrix shows it (and every Attribution
export reads it): row i explains the token at target position t from the state at t - 1, column p is source
token p's part of that state.

The score is source p's contribution to the logit of the token at t (its part of the state times that token's
unembedding row, docs/methods/depass.md) when the decomposition runs to the last layer and still holds the
model's unembedding; otherwise (a loaded file, or a decomposition that stops early) it is the L2 norm of
source p's part of the state, and the method name says so. The "bias" component (norm and output biases) is
not a token: it is left out of the rows, so a row sums to the logit minus the bias component's part.
"""

from __future__ import annotations

import numpy as np
import torch

from attrwidgets.core.frozen import softcap_ratio
from attrwidgets.core.token.result import Attribution
from attrwidgets.errors import AttrWidgetsError

LOGIT_METHOD = "depass"
NORM_METHOD = "depass_l2"


def target_positions_of(decomposition) -> list[int]:
    """The generated tokens when there are any, else every position after the first (each one's next-token
    prediction from the position before it)."""
    generated = [i for i, t in enumerate(decomposition.tokens) if t.segment == "generated"]
    return generated or list(range(1, len(decomposition.tokens)))


def as_attribution(decomposition) -> Attribution:
    if decomposition.level != "token":
        raise AttrWidgetsError(
            f"Only a token-level Decomposition has a token view; this one is level {decomposition.level!r}. "
            "Use to_dataframe() for it, or aw.depass(model, prompt, level='token') for the token view.")
    T = len(decomposition.tokens)
    targets = target_positions_of(decomposition)
    by_logit = decomposition.unembedding is not None and decomposition.options.get("final_norm", False)
    scores = np.zeros((len(targets), T), np.float32)
    weight, bias, cap = decomposition.unembedding if by_logit else (None, None, None)
    for i, t in enumerate(targets):
        parts = decomposition.states[t - 1, :T]  # the state at t - 1 predicts the token at t; (T, D) token parts
        if by_logit:  # logit_scores at this one position: an LM-head bias belongs to the bias part, left out
            token_id = int(decomposition.tokens[t].id)
            unembed = weight[token_id].detach().float().cpu().numpy()
            row = parts @ unembed
            if cap:  # the final soft-cap's frozen scale, from the whole logit (bias part included)
                logit = float(decomposition.states[t - 1].sum(0) @ unembed)
                logit += 0.0 if bias is None else float(bias[token_id])
                row = row * float(softcap_ratio(torch.tensor([logit]), cap)[0])
        else:
            row = np.linalg.norm(parts, axis=-1)
        scores[i, :t] = row[:t]  # causal: a later position has no part in the state at t - 1
    options = {**decomposition.options, "level": "token", "score": "logit" if by_logit else "l2",
               "completeness_error": float(decomposition.completeness_error)}
    return Attribution(tokens=list(decomposition.tokens), target_positions=targets, scores=scores,
                       method=LOGIT_METHOD if by_logit else NORM_METHOD, options=options,
                       model_id=decomposition.model_id, timestamp=decomposition.timestamp, prompt=decomposition.prompt)
