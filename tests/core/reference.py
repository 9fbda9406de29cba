"""Independent computations for the tests: the plain HF forward (full logits at every position), no
attrwidgets machinery (no truncation, no unembedding-at-targets, no shared graph)."""

import torch


def target_value(handle, embeds, position, token_id, contrast_id=None, objective="log_prob"):
    logits = handle.model(inputs_embeds=embeds.unsqueeze(0), use_cache=False).logits[0, position - 1].float()
    if contrast_id is not None:
        return logits[token_id] - logits[contrast_id]
    if objective == "logit":
        return logits[token_id]
    return torch.log_softmax(logits, -1)[token_id]


def gradient(handle, embeds, position, token_id, **kw):
    x = embeds.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(target_value(handle, x, position, token_id, **kw), x)
    return g


def input_embeds(handle, result):
    ids = torch.tensor([t.id for t in result.tokens])
    with torch.no_grad():
        return handle.model.get_input_embeddings()(ids)
