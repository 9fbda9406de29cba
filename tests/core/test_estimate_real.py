"""A 2,048-token prompt on the real default model, for every family: under a memory limit it would not fit,
the call is refused up front (before any forward over the prompt) with its estimate and a way to reduce it.
What runs at 2,048 tokens on this machine, with its time and peak memory, is a benchmark
(benchmarks/estimate/bench_estimate.py; figures in the README)."""

from __future__ import annotations

import re

import pytest

import attrwidgets as aw
from attrwidgets.core import estimate
from attrwidgets.errors import AttrWidgetsError

pytestmark = pytest.mark.real_model

PARAGRAPH = "The history of the city begins with a small fishing village on the river. Over the centuries "
LENGTH = 2048


def long_ids(model, n: int) -> list[int]:
    ids = model.tokenizer(PARAGRAPH * (n // 10), add_special_tokens=False)["input_ids"][:n]
    assert len(ids) == n
    return ids


CALLS = {  # each with its smallest options: the refusal must come from the prompt's length alone
    "saliency": lambda m, ids: aw.attribute(m, ids, method="saliency", max_new_tokens=1, progress=False),
    "layer_ig": lambda m, ids: aw.layer_ig(m, ids, max_new_tokens=1, n_steps=2, progress=False),
    "depass": lambda m, ids: aw.depass(m, ids, progress=False),
    "head_contributions": lambda m, ids: aw.head_contributions(m, ids, progress=False),
    "attribution_graph": lambda m, ids: aw.attribution_graph(m, ids, max_feature_nodes=16, progress=False),
    "lig": lambda m, ids: aw.lig(m, m.tokenizer.decode(ids), layers=[10], target_tokens=[5], n_steps=2,
                                 granularity="layer"),
    "dlig": lambda m, ids: aw.dlig(m, ids[:-8], gen_length=8, denoising_steps=2, n_steps=2, mask_token_id=0, progress=False),
}


@pytest.mark.parametrize("family", sorted(CALLS))
def test_a_2048_token_prompt_is_refused_up_front_when_it_does_not_fit(real_model, family, monkeypatch):
    from attrwidgets.core import boundaries, forward, frozen

    started = []
    for owner, cls in ((frozen, "FrozenForward"), (forward, "TargetFunction"), (boundaries, "Boundaries")):
        monkeypatch.setattr(getattr(owner, cls), "__init__",
                            lambda self, *a, _name=cls, **k: started.append(_name) or (_ for _ in ()).throw(
                                AssertionError(f"{_name} started before the refusal")))
    monkeypatch.setattr(real_model.model, "generate", lambda *a, **k: started.append("generate"))
    monkeypatch.setenv(estimate.MEMORY_LIMIT_ENV, "2GiB")
    with pytest.raises(AttrWidgetsError, match=r"on \d+ tokens needs about .* GiB on cpu, more than the 1.6 GiB"):
        CALLS[family](real_model, long_ids(real_model, LENGTH))
    assert started == []


def test_token_level_depass_at_2048_tokens_needs_tens_of_gigabytes(real_model, monkeypatch):
    """The figure in the refusal is the stack's own arithmetic: (T + 1) x T x 576 floats, about 9.7 GB,
    held three times (stack, normed copy, result), plus the captured attention."""
    monkeypatch.setenv(estimate.MEMORY_LIMIT_ENV, "16GiB")
    with pytest.raises(AttrWidgetsError, match="one component per token") as info:
        aw.depass(real_model, long_ids(real_model, LENGTH), progress=False)
    need = float(re.search(r"needs about .* and ([0-9.]+) GiB", str(info.value)).group(1))
    stack = 3 * 4 * (LENGTH + 1) * LENGTH * 576 / 2**30
    assert stack < need < stack + 16
