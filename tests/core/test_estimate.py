"""aw.estimate and the up-front refusal (core/estimate.py, core/cost_models.py).

The memory model is checked where it is arithmetic (the shapes it counts are the shapes the methods build);
a computation over the limit is refused before its heavy part starts, with the estimate and a fix in the
message; under the limit the same call runs. Accuracy against real runs is a benchmark
(benchmarks/estimate/bench_estimate.py), never a timed test.
"""

from __future__ import annotations

import pytest
import torch

import attrwidgets as aw
from attrwidgets.core import cost_models, estimate
from attrwidgets.core.costs import FLOAT, ModelShape
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import tiny_handle, tiny_masked_lm

PROMPT = "The capital of France is"

CALLS = {  # fn name -> (call, options), each on its tiny model
    "attribute": (lambda h, **o: aw.attribute(h, PROMPT, progress=False, **o),
                  {"method": "integrated_gradients", "n_steps": 8, "max_new_tokens": 2}),
    "layer_ig": (lambda h, **o: aw.layer_ig(h, PROMPT, progress=False, **o), {"layer": 1, "n_steps": 8}),
    "depass": (lambda h, **o: aw.depass(h, PROMPT, progress=False, **o), {}),
    "head_contributions": (lambda h, **o: aw.head_contributions(h, PROMPT, progress=False, **o), {}),
    "attribution_graph": (lambda h, **o: aw.attribution_graph(h, PROMPT, progress=False, **o), {}),
    "lig": (lambda h, **o: aw.lig(h, PROMPT, **o), {"n_steps": 4, "layers": [1], "granularity": "layer"}),
    "dlig": (lambda h, **o: aw.dlig(h, PROMPT, progress=False, **o), {"gen_length": 4, "denoising_steps": 2, "n_steps": 4}),
}


def handle_for(fn_name: str):
    return tiny_masked_lm() if fn_name == "dlig" else tiny_handle("llama")


def test_every_compute_function_has_an_estimate():
    assert set(CALLS) == set(estimate.FUNCTIONS)
    for fn_name, (_, options) in CALLS.items():
        est = aw.estimate(fn_name, handle_for(fn_name), PROMPT, **options)
        assert isinstance(est, aw.Estimate) and est.device == "cpu"
        assert 0 < est.seconds < 60 and 0 < est.peak_bytes < 2**30, (fn_name, est)
        assert "about" in str(est) and "on cpu" in str(est)


def test_bad_function_name_is_a_clear_error():
    with pytest.raises(AttrWidgetsError, match="No estimate for 'attribution': use one of attribute, "):
        aw.estimate("attribution", tiny_handle("llama"), PROMPT)
    with pytest.raises(AttrWidgetsError, match="prompt is empty"):
        aw.estimate("depass", tiny_handle("llama"), " ")


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "olmo2", "gpt_neox", "gpt2"])
def test_the_shape_is_the_models_own(arch):
    handle = tiny_handle(arch)
    shape = ModelShape.of(handle)
    block = handle.adapter.get(handle.model, handle.adapter.blocks)[0]
    assert shape.layer_params == sum(p.numel() for p in block.parameters())
    assert shape.n_layers == handle.adapter.n_layers(handle.model)
    from attrwidgets.core.frozen import FrozenForward

    frozen = FrozenForward(handle, torch.arange(7) + 3)
    assert (shape.n_heads, shape.head_dim, shape.d_kv) == (frozen.n_heads, frozen.head_dim,
                                                           frozen.n_kv_heads * frozen.head_dim)
    # the captured attention the model counts twice (while its causal copy is made) is L x H x T x T floats
    assert sum(b.attention.numel() * 4 for b in frozen.blocks) == shape.n_layers * shape.attention_bytes(7)


@pytest.mark.parametrize(("level", "options"), [
    ("token", {}), ("head", {"layer": 0}), ("module", {"layer": 1}), ("neuron", {"layer": 0, "neurons": [1, 5, 7]}),
])
def test_the_stack_the_model_counts_is_the_stack_depass_builds(level, options):
    handle = tiny_handle("llama")
    result = aw.depass(handle, PROMPT, level=level, progress=False, **options)
    T = len(result.tokens)
    M = cost_models.component_count(ModelShape.of(handle), level, T, options)
    assert result.states.shape[1] == M  # (T, M, D)
    cost = estimate.cost_of(handle, "depass", T, 0, {"level": level, **options}, generates=False)
    assert cost.peak_bytes >= 3 * FLOAT * result.states.size  # the stack, its normed copy, the result


def test_token_level_depass_grows_with_the_square_of_the_prompt():
    handle = tiny_handle("llama")
    fixed = ModelShape.of(handle).runtime_bytes  # the libraries' workspaces: the same for every call
    small, large = (estimate.cost_of(handle, "depass", T, 0, {}, generates=False).peak_bytes - fixed
                    for T in (100, 400))
    assert 14 < large / small < 17  # stack T^2 and attention T^2 dominate: (400 / 100)^2 = 16


def test_fewer_rows_cost_less_in_a_session():
    from attrwidgets.core.token.session import AttributionSession

    session = AttributionSession(tiny_handle("llama"), PROMPT, max_new_tokens=4)
    one = session.estimate("integrated_gradients", rows=[0], n_steps=16)
    every = session.estimate("integrated_gradients", n_steps=16)
    assert one.seconds < every.seconds


@pytest.mark.parametrize("fn_name", sorted(CALLS))
def test_over_the_limit_it_is_refused_before_the_heavy_part(fn_name, monkeypatch):
    from attrwidgets.core import boundaries, forward, frozen

    started = []
    for owner, cls in ((frozen, "FrozenForward"), (forward, "TargetFunction"), (boundaries, "Boundaries")):
        original = getattr(owner, cls).__init__

        def spy(self, *args, _original=original, _name=cls, **kwargs):
            started.append(_name)
            _original(self, *args, **kwargs)

        monkeypatch.setattr(getattr(owner, cls), "__init__", spy)
    call, options = CALLS[fn_name]
    handle = handle_for(fn_name)
    monkeypatch.setenv(estimate.MEMORY_LIMIT_ENV, "4KiB")
    label = {"attribute": "integrated_gradients", "layer_ig": "layer_integrated_gradients"}.get(fn_name, fn_name)
    with pytest.raises(AttrWidgetsError, match=rf"^{label} on \d+ tokens needs about .* and .* on cpu, more than"):
        call(handle, **options)
    assert not started, f"{fn_name} started {started} before refusing"
    monkeypatch.setenv(estimate.MEMORY_LIMIT_ENV, "8GiB")
    call(handle, **options)  # the same call runs under a limit it fits
    assert started


def test_the_refusal_says_how_to_reduce_it(monkeypatch):
    monkeypatch.setenv(estimate.MEMORY_LIMIT_ENV, "64KiB")
    with pytest.raises(AttrWidgetsError, match="one component per token.*level='head'.*ATTRWIDGETS_MEMORY_LIMIT"):
        aw.depass(tiny_handle("llama"), PROMPT, progress=False)


@pytest.mark.parametrize(("text", "expected"), [
    (4096, 4096), ("8GiB", 8 << 30), ("512 MiB", 512 << 20), ("2g", 2 << 30), ("100", 100), ("1.5K", 1536),
    ("4GB", 4 * 10**9), ("3kb", 3000), ("100B", 100), (".5 GiB", 1 << 29),
])
def test_sizes_parse(text, expected):
    assert estimate.parse_bytes(text) == expected


@pytest.mark.parametrize("bad", ["lots", "", "-3GiB", 0, True, "4iB", "4 GiBs", "0.0001"])
def test_bad_sizes_are_a_clear_error(bad):
    with pytest.raises(AttrWidgetsError, match="is not a size"):
        estimate.parse_bytes(bad)


def test_device_rates_are_measured_once():
    first = estimate.device_rates(torch.device("cpu"), torch.float32)
    assert all(r > 0 for r in first)
    assert estimate.device_rates(torch.device("cpu"), torch.float32) is first
