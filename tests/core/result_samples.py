"""One small result of every type, on the tiny random models: what the tests of the result contract share."""

from __future__ import annotations

import attrwidgets as aw
from attrwidgets.testing import tiny_masked_lm

PROMPT = "The capital of France is"


def results(handle):
    """(name, result) for every result type, computed on `handle` (a tiny llama) and a tiny masked LM."""
    yield "attribution", aw.attribute(handle, PROMPT, method="saliency", max_new_tokens=2, progress=False)
    yield "decomposition", aw.depass(handle, PROMPT, progress=False)
    yield "heads", aw.head_contributions(handle, PROMPT, progress=False)
    yield "lig", aw.lig(handle, PROMPT, layers=[0], n_steps=2, granularity="layer")
    yield "diffusion", aw.dlig(tiny_masked_lm(), PROMPT, gen_length=4, denoising_steps=2, n_steps=2, progress=False)
    yield "graph", aw.attribution_graph(handle, PROMPT, progress=False)
