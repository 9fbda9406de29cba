"""LIG on tiny random models of four architectures: the properties of docs/methods/lig.md.

Completeness is checked against totals computed here, outside the code under test (the model's own
hidden states / module calls), so a wrong reported error cannot hide a wrong attribution.
"""

import functools

import numpy as np
import pytest
import torch

import attrwidgets as aw
from attrwidgets.core.boundaries import Boundaries
from attrwidgets.core.lig.baselines import itb_map_ratio, itb_zero_ratio
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import tiny_handle

ARCHS = ("bert", "gpt2", "llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "olmo2", "gpt_neox")
TEXT = "the cat sat on the mat"


@functools.cache
def handle(arch):
    return tiny_handle(arch, seed=1)


@functools.cache
def full_result(arch, baseline_layer="self_input_token", baseline_att="self_input_token", baseline_mlp="zero"):
    return aw.lig(handle(arch), TEXT, n_steps=32, baseline_layer=baseline_layer, baseline_att=baseline_att,
                  baseline_mlp=baseline_mlp)


def hidden_states(h, ids):
    base = h.adapter.base(h.model)
    with torch.no_grad():
        return base(input_ids=ids.unsqueeze(0), output_hidden_states=True).hidden_states


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("baselines", [("self_input_token", "self_input_token", "zero"),
                                       ("zero", "zero", "att_itb_a0")])
def test_completeness_of_every_route_below_two_percent(arch, baselines):
    result = full_result(arch, *baselines)
    adapter = handle(arch).adapter
    for route in ("layer", "att", "mlp"):
        if route == "mlp" and adapter.parallel:
            continue  # no u->z route where the MLP reads the block input (test_parallel_blocks_have_no_mlp_route)
        if baselines[("layer", "att", "mlp").index(route)] == "zero" and adapter.post_norm_mlp:
            # From a zero baseline every route starts with a scale-invariant norm, which on the path a * z jumps
            # near a = sqrt(eps / mean(z^2)). Post-norms keep these models' stream at the norms' size (Gemma
            # also scales its embeddings by sqrt(D)), so the jump sits near a = 1e-3, below every quadrature
            # node (docs/methods/lig.md); the older tiny models' stream is small enough to smooth it out.
            # The other baseline set covers these routes.
            continue
        for layer in range(result.n_layers):
            err = result.completeness(route, layer)
            assert np.all(np.isfinite(err)) and err.max() < 0.02, (route, layer, err.max())


@pytest.mark.parametrize("arch", ARCHS)
def test_reported_error_is_the_true_error_against_an_independent_forward(arch):
    """z->z with the zero baseline: sum_i IG_ij must equal ||z_next_j(z) - z_next_j(0)||, where both
    states come from here: the real z_next from the model's hidden states, z_next(0) from the HF block."""
    h = handle(arch)
    result = full_result(arch, "zero", "zero", "zero")
    ids = torch.tensor([t.id for t in result.tokens])
    states = hidden_states(h, ids)
    bounds = Boundaries(h, ids)
    for layer in range(result.n_layers):
        z_next = states[layer + 1][0]
        if layer == result.n_layers - 1 and h.adapter.final_norm:  # HF applies the final norm to the last one
            z_next = bounds.state("output", layer)
        with torch.no_grad():
            zero_out = bounds.block(layer)(torch.zeros_like(states[layer]), **bounds._kwargs(layer, 1))
            zero_out = zero_out[0] if isinstance(zero_out, tuple) else zero_out
        expected = torch.linalg.vector_norm(z_next - zero_out[0], dim=-1).double().numpy()
        cols = result.route("layer", layer)
        total = cols.scores.sum(axis=1)
        true_error = np.abs(total - expected) / expected
        np.testing.assert_allclose(cols.expected, expected, rtol=1e-5)
        np.testing.assert_allclose(cols.error, true_error, rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2"])
def test_decoders_are_exactly_causal(arch):
    result = full_result(arch)
    for layer in range(result.n_layers):
        assert np.all(np.triu(result.z2z[layer], 1) == 0)
        z2u = result.z2u[layer]  # (T, H, T)
        for j in range(result.length):
            assert np.all(z2u[j, :, j + 1:] == 0)


def test_bert_attributes_to_later_tokens_too():
    result = full_result("bert")
    assert np.abs(np.triu(result.z2z[0], 1)).max() > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_z2z_column_equals_a_plain_autograd_loop(arch):
    """One column by the textbook loop: node by node, one backward each, straight from the HF block."""
    h = handle(arch)
    result = aw.lig(h, TEXT, granularity="layer", layers=[1], target_tokens=[3], n_steps=8,
                    quadrature="trapezoid", baseline_layer="self_input_token")
    bounds = Boundaries(h, torch.tensor([t.id for t in result.tokens]))
    z = bounds.state("input", 1)
    j = 3
    base = z[j].expand_as(z)

    def block(x):
        out = bounds.block(1)(x.unsqueeze(0), **bounds._kwargs(1, 1))
        return (out[0] if isinstance(out, tuple) else out)[0, j]

    with torch.no_grad():
        ref = block(base)
    grad_sum = torch.zeros_like(z)
    nodes = np.linspace(0, 1, 8)
    for k, a in enumerate(nodes):
        if a == 0:
            continue
        w = (1 / 7) * (0.5 if k in (0, 7) else 1.0)
        x = (base + float(a) * (z - base)).detach().requires_grad_(True)
        (g,) = torch.autograd.grad(torch.linalg.vector_norm(block(x) - ref), x)
        grad_sum += w * g
    expected = ((z - base) * grad_sum).sum(-1).numpy()
    np.testing.assert_allclose(result.z2z[1][j], expected, rtol=1e-4, atol=1e-6)
    assert result.z2z[1][j, j] == 0  # ITB: the target's own input does not move


def test_itb_post_processing_matches_the_worked_examples():
    np.testing.assert_allclose(itb_zero_ratio([.4, 0, .6], [.1, .5, .2], 1), [0.15, 0.625, 0.225])
    np.testing.assert_allclose(itb_map_ratio([.3, 0, .7], .25, 1), [0.225, 0.25, 0.525])


def test_ratio_baselines_keep_the_itb_column_sum_and_fill_the_self_term():
    result = aw.lig(handle("gpt2"), TEXT, granularity="att", layers=[1], target_tokens=[4], n_steps=16,
                    baseline_att="itb_map_ratio")
    itb = result.route("att", 1, "self_input_token").scores[4]
    mapped = result.z2u[1][4]
    np.testing.assert_allclose(mapped.sum(-1), itb.sum(-1), rtol=1e-5, atol=1e-9)
    assert np.all(itb[:, 4] == 0) and np.any(mapped[:, 4] != 0)
    weights = result.attention[1]
    for head in range(result.n_heads):
        np.testing.assert_allclose(mapped[head], itb_map_ratio(itb[head], weights[head, 4, 4], 4), rtol=1e-5)
    result.session.compute("att", [1], [4], baseline="itb_zero_ratio")
    zero = result.route("att", 1, "zero").scores[4]
    ratio = result.route("att", 1, "itb_zero_ratio").scores[4]
    np.testing.assert_allclose(ratio[0], itb_zero_ratio(itb[0], zero[0], 4), rtol=1e-5)


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_composition_is_the_head_sum_of_att_times_mlp_slices(arch):
    result = full_result(arch)
    att, mlp = result.z2u[0], result.u2z[0]
    d_head = result.hidden_size // result.n_heads
    expected = np.zeros((result.length, result.length))
    for h in range(result.n_heads):
        expected += att[:, h, :] * mlp[:, h * d_head:(h + 1) * d_head].sum(-1)[:, None]
    np.testing.assert_allclose(result.composed(0), expected, rtol=1e-5, atol=1e-9)
    diag = result.l2_diagnostic(0)
    j = 3
    np.testing.assert_allclose(diag["l2"][j], np.linalg.norm(result.z2z[0][j] - expected[j]), rtol=1e-5)
    assert diag["pearson"][j] == pytest.approx(np.corrcoef(result.z2z[0][j], expected[j])[0, 1], abs=1e-6)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "bert"])
def test_head_writes_reassemble_the_attention_output(arch):
    h = handle(arch)
    ids = torch.tensor([5, 6, 7, 8, 9])
    bounds = Boundaries(h, ids)
    seen = {}
    o_proj = bounds.module("o_proj", 0)

    def keep(module, args, out):  # returns None: a forward hook's return value would replace the output
        seen["out"] = out[0].detach()

    hook = o_proj.register_forward_hook(keep)
    with torch.no_grad():
        h.adapter.base(h.model)(input_ids=ids.unsqueeze(0))
        writes = bounds.head_writes(0, bounds.state("input", 0).unsqueeze(0))[0]
    hook.remove()
    bias = o_proj.bias.detach() if o_proj.bias is not None else 0
    torch.testing.assert_close(writes.sum(1) + bias, seen["out"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_run_from_every_boundary_reproduces_the_model_output(arch):
    h = handle(arch)
    ids = torch.tensor([5, 6, 7, 8, 9, 10])
    bounds = Boundaries(h, ids)
    with torch.no_grad():
        out = h.model(input_ids=ids.unsqueeze(0))
        real = out.logits if h.adapter.unembedding else out.last_hidden_state
        for site in ("input", "mid", "output"):
            for layer in range(bounds.n_layers):
                resumed = bounds.run_from(site, layer, bounds.state(site, layer).unsqueeze(0).repeat(2, 1, 1))
                torch.testing.assert_close(resumed, real.expand_as(resumed), rtol=1e-4, atol=1e-5)


def test_target_head_and_target_tokens_compute_only_what_was_asked():
    result = aw.lig(handle("llama"), TEXT, granularity=["att"], layers=[0], target_tokens=[2, 4], target_head=1,
                    n_steps=8)
    cols = result.route("att", 0)
    done = np.isfinite(cols.expected)
    assert done[2, 1] and done[4, 1] and done.sum() == 2
    assert result.layers == [0] and "layer" not in {r for r, _, _ in result.columns}


def test_live_session_adds_columns_without_dropping_any():
    result = aw.lig(handle("gpt2"), TEXT, granularity="layer", layers=[0], target_tokens=[1], n_steps=8)
    before = result.z2z[0][1].copy()
    result.session.ensure("layer", 1, 3)
    result.session.ensure("composed", 0, 2)
    np.testing.assert_array_equal(result.z2z[0][1], before)
    assert result.route("layer", 1).has(3) and result.route("att", 0).has(2) and result.route("mlp", 0).has(2)


def test_upstream_json_round_trip_and_bundle(tmp_path):
    result = full_result("gpt2")
    result.to_lig_json(tmp_path / "lig.json")
    import json

    data = json.loads((tmp_path / "lig.json").read_text())
    # upstream orientation: matrix[i][j] = source i -> target j
    assert data["layers"]["0"]["z2z"]["matrix"][1][3] == pytest.approx(float(result.z2z[0][3, 1]))
    back = aw.load_lig_json(tmp_path / "lig.json")
    for layer in range(result.n_layers):
        np.testing.assert_allclose(back.z2z[layer], result.z2z[layer], rtol=1e-6)
        np.testing.assert_allclose(back.z2u[layer], result.z2u[layer], rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(back.u2z[layer], result.u2z[layer], rtol=1e-6, atol=1e-12)
    result.save(tmp_path / "bundle")
    loaded = aw.load_layer_attribution(tmp_path / "bundle")
    assert set(loaded.columns) == set(result.columns)
    np.testing.assert_array_equal(loaded.z2u[1], result.z2u[1])


@pytest.mark.parametrize("options, message", [
    ({"granularity": "heads"}, "Unknown granularity 'heads'"),
    ({"baseline_att": "pad"}, "Unknown baseline_att 'pad': use one of zero, self_input_token"),
    ({"baseline_mlp": "self_input_token"}, "att_itb_a0"),
    ({"layers": [7]}, "Layer 7 is out of range: this model's block list has 2"),
    ({"target_tokens": [99]}, "Target token 99 is out of range"),
    ({"target_head": 0, "granularity": "layer"}, "target_head picks a head of the attention route"),
    ({"target_head": 9}, "Head 9 is out of range"),
    ({"n_steps": 0}, "n_steps must be a positive integer"),
    ({"quadrature": "simpson"}, "Unknown quadrature 'simpson': use one of riemann_right"),
    ({"steps": 3}, "Unknown lig option(s) ['steps']"),
])
def test_bad_options_say_what_is_valid(options, message):
    with pytest.raises(AttrWidgetsError) as err:
        aw.lig(handle("llama"), TEXT, **options)
    assert message in str(err.value)


def test_empty_and_too_long_text():
    with pytest.raises(AttrWidgetsError, match="empty"):
        aw.lig(handle("llama"), "   ")
    with pytest.raises(AttrWidgetsError, match="context"):
        aw.lig(handle("llama"), "word " * 200)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"tokens": [], "config": {}, "layers": {}}', "non-empty list of strings"),
    ('{"tokens": ["a", "b"], "config": {}, "layers": {"0": {"z2z": {"matrix": [[1, 2]]}}}}', "1 rows for 2 tokens"),
    ('{"tokens": ["a"], "config": {}, "layers": {"x": {}}}', "not a layer index"),
    (('{"tokens": ["a"], "config": {}, "layers": {"0": {"targets": {"0": {"u2z": {"contributions": ["q"], '
     '"l2_total": 1}}}}}}'), "non-numbers"),
])
def test_malformed_lig_json_is_refused_clearly(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(AttrWidgetsError, match="Cannot read") as err:
        aw.load_lig_json(path)
    assert message in str(err.value)


def test_unsupported_architecture_names_the_supported_ones():
    from transformers import OPTConfig, OPTForCausalLM

    from attrwidgets.core.adapters import adapter_for

    model = OPTForCausalLM(OPTConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                     num_attention_heads=2, word_embed_proj_dim=16))
    with pytest.raises(AttrWidgetsError, match="Supported: bert, gemma2, gemma3_text, gpt2, gpt_neox, llama"):
        adapter_for(model)


@pytest.mark.parametrize("arch", ARCHS + ("mistral",))
def test_single_query_block_equals_the_full_block(arch):
    """core/single_query.py (what the routes integrate) against the model's own block forward, at
    perturbed inputs, for a different query position in each batch row."""
    from attrwidgets.core.single_query import block_output_at, head_writes_at

    h = handle(arch) if arch != "mistral" else tiny_handle("mistral", seed=1)
    bounds = Boundaries(h, torch.tensor([5, 6, 7, 8, 9, 10, 11]))
    generator = torch.Generator().manual_seed(0)
    positions = torch.tensor([0, 3, 6, 2])
    rows = torch.arange(4)
    with torch.no_grad():
        for layer in range(bounds.n_layers):
            z = bounds.state("input", layer).expand(4, -1, -1) + 0.5 * torch.randn(4, 7, 32, generator=generator)
            torch.testing.assert_close(block_output_at(bounds, layer, z, positions),
                                       bounds.run_block(layer, z)[rows, positions], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(head_writes_at(bounds, layer, z, positions),
                                       bounds.head_writes(layer, z)[rows, positions], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_run_from_module_outputs_and_chosen_positions(arch):
    h = handle(arch)
    ids = torch.tensor([5, 6, 7, 8, 9, 10])
    bounds = Boundaries(h, ids)
    with torch.no_grad():
        out = h.model(input_ids=ids.unsqueeze(0))
        real = out.logits if h.adapter.unembedding else out.last_hidden_state
        for site in ("attn", "mlp"):
            for layer in range(bounds.n_layers):
                resumed = bounds.run_from(site, layer, bounds.state(site, layer).unsqueeze(0),
                                          positions=torch.tensor([1, 4]))
                torch.testing.assert_close(resumed[0], real[0, [1, 4]], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_mlp_route_without_the_residual_connection(arch):
    """include_residual_connection=False: F(u) = the MLP sublayer alone (BERT: LayerNorm(MLP(u)))."""
    h = handle(arch)
    with_res = aw.lig(h, TEXT, granularity="mlp", layers=[0], target_tokens=[2], n_steps=16)
    without = aw.lig(h, TEXT, granularity="mlp", layers=[0], target_tokens=[2], n_steps=16,
                     include_residual_connection=False)
    bounds = Boundaries(h, torch.tensor([t.id for t in without.tokens]))
    u = bounds.state("mid", 0)[2:3].unsqueeze(0)
    with torch.no_grad():
        mlp_only = bounds.run_tail(0, u, residual=False)[0, 0]
        reference = bounds.run_tail(0, torch.zeros_like(u), residual=False)[0, 0]
    assert without.l2_total[0][2] == pytest.approx(float(torch.linalg.vector_norm(mlp_only - reference)), rel=1e-5)
    assert without.completeness("mlp", 0)[2] < 0.02
    assert not np.allclose(without.u2z[0][2], with_res.u2z[0][2])
    assert without.to_lig_json()["config"]["include_residual_connection"] is False


def test_a_prompt_as_token_ids_or_chat_gives_the_same_result_as_its_text():
    handle = tiny_handle("llama")
    text = "the cat sat on the mat"
    ids = handle.tokenizer(text)["input_ids"]
    options = {"layers": [1], "n_steps": 4, "granularity": "layer"}
    by_text, by_ids = aw.lig(handle, text, **options), aw.lig(handle, ids, **options)
    assert [t.id for t in by_ids.tokens] == [t.id for t in by_text.tokens]
    np.testing.assert_array_equal(by_ids.route("layer", 1).scores, by_text.route("layer", 1).scores)
    chat = aw.lig(handle, [{"role": "user", "content": text}], **options)
    assert any(t.segment == "user" for t in chat.tokens) and chat.text


def test_parallel_blocks_have_no_mlp_route():
    result = full_result("gpt_neox")
    assert result.options["routes"] == ["att", "layer"] or "mlp" not in result.options["routes"]
    with pytest.raises(AttrWidgetsError, match="parallel"):
        aw.lig(handle("gpt_neox"), TEXT, n_steps=4, granularity="mlp")
