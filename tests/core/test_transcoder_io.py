"""Transcoder files: our layout and circuit-tracer's (per-layer, cross-layer, hub list, GemmaScope .npz),
round trips by forward outputs, and bad layouts (no model needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from attrwidgets.core.graph.checkpoint import load_transcoder
from attrwidgets.core.graph.transcoder import Transcoder
from attrwidgets.errors import AttrWidgetsError

L, F, D = 3, 12, 8


def make(kind="plt", activation="jumprelu", skip=False, seed=0) -> Transcoder:
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=g)

    W_dec = [rand(F, D) if kind == "plt" else rand(F, L - l, D) for l in range(L)]
    threshold = [rand(F).abs() * 0.5 for _ in range(L)] if activation == "jumprelu" else None
    return Transcoder(kind, activation, [rand(F, D) for _ in range(L)], [rand(F) * 0.1 for _ in range(L)], W_dec,
                      [rand(D) for _ in range(L)], threshold, [rand(D, D) for _ in range(L)] if skip else None,
                      4 if activation == "topk" else None, {"model": {"id": "toy"}, "figures": {"fve": [0.5] * L}})


def outputs(tc: Transcoder, seed=1) -> list[torch.Tensor]:
    xs = [torch.randn(6, D, generator=torch.Generator().manual_seed(seed + l)) * 2 for l in range(L)]
    acts = [tc.activate(l, tc.encode(l, xs[l])) for l in range(L)]
    return [tc.reconstruct(acts, xs, l) for l in range(L)]


def assert_same_forward(a: Transcoder, b: Transcoder):
    assert (a.kind, a.activation, a.n_layers, a.n_features, a.d_model) == (b.kind, b.activation, b.n_layers,
                                                                          b.n_features, b.d_model)
    assert (a.W_skip is None) == (b.W_skip is None)
    outs_a, outs_b = outputs(a), outputs(b)
    for oa, ob in zip(outs_a, outs_b):
        torch.testing.assert_close(oa, ob, rtol=0, atol=0)
    # and the outputs are not trivially zero: the activation lets some features through
    assert any(float(o.abs().sum()) > 0 for o in outs_a)
    assert sum(int((a.activate(l, a.encode(l, torch.randn(6, D) * 2)) > 0).sum()) for l in range(L)) > 0


CASES = [("plt", "jumprelu", False), ("plt", "relu", False), ("plt", "jumprelu", True), ("plt", "relu", True),
         ("clt", "jumprelu", False), ("clt", "relu", False)]


@pytest.mark.parametrize("fmt", ["attrwidgets", "circuit-tracer"])
@pytest.mark.parametrize("kind,activation,skip", CASES)
def test_round_trip(tmp_path, fmt, kind, activation, skip):
    tc = make(kind, activation, skip)
    tc.save(tmp_path / "tc", format=fmt)
    back = load_transcoder(tmp_path / "tc")
    assert_same_forward(tc, back)
    assert back.config["figures"] == tc.config["figures"]  # training figures survive both formats


def test_topk_round_trip_ours_and_refused_by_circuit_tracer(tmp_path):
    tc = make("plt", "topk")
    tc.save(tmp_path / "ours")
    back = load_transcoder(tmp_path / "ours")
    assert back.top_k == 4
    assert_same_forward(tc, back)
    with pytest.raises(AttrWidgetsError, match="no TopK"):
        tc.save(tmp_path / "ct", format="circuit-tracer")


def test_our_layout_on_disk(tmp_path):
    make("plt", "jumprelu", skip=True).save(tmp_path)
    header = json.loads((tmp_path / "config.json").read_text())
    assert header["schema"] == "attrwidgets.transcoder" and header["version"] == 1
    assert (header["kind"], header["activation"], header["n_layers"], header["d_model"], header["n_features"]) == (
        "plt", "jumprelu", L, D, F)
    assert header["skip"] is True and header["config"]["model"]["id"] == "toy"
    tensors = load_file(str(tmp_path / "transcoder.safetensors"))
    assert set(tensors) == {f"{n}.{l}" for n in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold", "W_skip")
                            for l in range(L)}
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob("*.pkl"))


def test_circuit_tracer_plt_layout_on_disk(tmp_path):
    tc = make("plt", "jumprelu", skip=True)
    tc.save(tmp_path, format="circuit-tracer")
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert config["model_kind"] == "transcoder_set"
    assert {"feature_input_hook", "feature_output_hook", "scan"} <= set(config)
    layer1 = load_file(str(tmp_path / "layer_1.safetensors"))
    assert set(layer1) == {"W_enc", "b_enc", "W_dec", "b_dec", "activation_function.threshold", "W_skip"}
    assert layer1["W_enc"].shape == (F, D) and layer1["W_dec"].shape == (F, D) and layer1["W_skip"].shape == (D, D)
    # circuit-tracer's forward on the raw file equals ours
    x = torch.randn(5, D)
    pre = x @ layer1["W_enc"].T + layer1["b_enc"]
    act = pre * (pre > layer1["activation_function.threshold"])
    out = act @ layer1["W_dec"] + layer1["b_dec"] + x @ layer1["W_skip"].T
    ours = tc.activate(1, tc.encode(1, x)) @ tc.decoder(1, 1) + tc.b_dec[1] + tc.skip(1, x)
    torch.testing.assert_close(out, ours)


def test_circuit_tracer_clt_layout_on_disk(tmp_path):
    tc = make("clt", "jumprelu")
    tc.save(tmp_path, format="circuit-tracer")
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["model_kind"] == "cross_layer_transcoder"
    enc = load_file(str(tmp_path / "W_enc_1.safetensors"))
    assert set(enc) == {"W_enc_1", "b_enc_1", "b_dec_1", "threshold_1"}
    dec = load_file(str(tmp_path / "W_dec_1.safetensors"))
    assert dec["W_dec_1"].shape == (F, L - 1, D)
    torch.testing.assert_close(dec["W_dec_1"][:, 1], tc.decoder(1, 2))  # slice k writes to layer 1 + k


def test_circuit_tracer_files_without_config_load(tmp_path):
    make("plt", "relu").save(tmp_path, format="circuit-tracer")
    (tmp_path / "config.yaml").unlink()
    assert load_transcoder(tmp_path).activation == "relu"


def _write_gemma_scope(folder, tc: Transcoder):
    """GemmaScope's hub files: params.npz per layer with W_enc [D, F] (transposed), W_dec [F, D], threshold."""
    refs = []
    for l in range(L):
        path = folder / f"layer_{l}" / "width_16k" / "average_l0_50" / "params.npz"
        path.parent.mkdir(parents=True)
        np.savez(path, W_enc=tc.W_enc[l].T.numpy(), W_dec=tc.W_dec[l].numpy(), b_enc=tc.b_enc[l].numpy(),
                 b_dec=tc.b_dec[l].numpy(), threshold=tc.threshold[l].numpy())
        refs.append(f"hf://google/gemma-scope-2b-pt-transcoders/layer_{l}/width_16k/average_l0_50/params.npz")
    return refs


def test_hub_list_with_gemma_scope_npz(tmp_path):
    tc = make("plt", "jumprelu")
    refs = _write_gemma_scope(tmp_path, tc)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "model_kind": "transcoder_set", "feature_input_hook": "ln2.hook_normalized",
        "feature_output_hook": "hook_mlp_out", "transcoders": refs}))
    back = load_transcoder(tmp_path / "config.yaml")  # the config file itself is accepted too
    assert_same_forward(tc, back)
    assert back.config["hooks"]["feature_input_hook"] == "ln2.hook_normalized"


def test_hub_list_old_records_and_file_names(tmp_path):
    """circuit-tracer's first release listed {layer, filepath} records; files found by their file name."""
    tc = make("plt", "relu", skip=True)
    entries = []
    for l in reversed(range(L)):  # order by the layer field, not the list
        save_file({"W_enc": tc.W_enc[l], "b_enc": tc.b_enc[l], "W_dec": tc.W_dec[l], "b_dec": tc.b_dec[l],
                   "W_skip": tc.W_skip[l]}, str(tmp_path / f"layer_{l}.safetensors"))
        entries.append({"id": f"t{l}", "layer": l,
                        "filepath": f"hf://mntss/skip-transcoder/layer_{l}.safetensors?revision=new-training"})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "model_kind": "transcoder_set", "feature_input_hook": "hook_resid_mid", "feature_output_hook": "mlp.hook_out",
        "transcoders": entries}))
    assert_same_forward(tc, load_transcoder(tmp_path))


def test_hub_list_missing_and_ambiguous_files(tmp_path):
    tc = make("plt", "jumprelu")
    refs = _write_gemma_scope(tmp_path, tc)
    config = {"model_kind": "transcoder_set", "feature_input_hook": "a", "feature_output_hook": "b"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**config, "transcoders": refs + [
        "hf://google/gemma-scope-2b-pt-transcoders/layer_3/width_16k/average_l0_50/params.npz"]}))
    # layer 3's file is absent; its bare name params.npz must not silently match another layer's file
    with pytest.raises(AttrWidgetsError, match=r"not in .*layer_3/width_16k"):
        load_transcoder(tmp_path)


def test_transposed_decoder_is_recognised(tmp_path):
    """Older hub files store W_dec as [D, F]; unambiguous when F != D."""
    tc = make("plt", "relu")
    for l in range(L):
        save_file({"W_enc": tc.W_enc[l], "b_enc": tc.b_enc[l], "W_dec": tc.W_dec[l].T.contiguous(),
                   "b_dec": tc.b_dec[l]}, str(tmp_path / f"layer_{l}.safetensors"))
    assert_same_forward(tc, load_transcoder(tmp_path))


def test_bad_layouts(tmp_path):
    with pytest.raises(AttrWidgetsError, match="does not exist"):
        load_transcoder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AttrWidgetsError, match="no transcoder layout.*Accepted layouts"):
        load_transcoder(tmp_path / "empty")
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "weights.bin").write_bytes(b"\0" * 10)
    with pytest.raises(AttrWidgetsError, match=r"found: \['weights.bin'\]"):
        load_transcoder(tmp_path / "random")
    # unknown model_kind
    (tmp_path / "kind").mkdir()
    (tmp_path / "kind" / "config.yaml").write_text("model_kind: sparse_autoencoder\n")
    with pytest.raises(AttrWidgetsError, match="model_kind 'sparse_autoencoder'"):
        load_transcoder(tmp_path / "kind")
    # a gap in the layer files
    make("plt", "relu").save(tmp_path / "gap", format="circuit-tracer")
    (tmp_path / "gap" / "layer_1.safetensors").unlink()
    with pytest.raises(AttrWidgetsError, match=r"none for layers \[1\]"):
        load_transcoder(tmp_path / "gap")
    # a JSON config that is not ours
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(AttrWidgetsError, match="not an attrwidgets transcoder config"):
        load_transcoder(tmp_path / "json")


def test_missing_tensors_and_wrong_shapes(tmp_path):
    tc = make("plt", "jumprelu")
    tc.save(tmp_path / "a", format="circuit-tracer")
    layer = load_file(str(tmp_path / "a" / "layer_2.safetensors"))
    del layer["b_enc"]
    save_file(layer, str(tmp_path / "a" / "layer_2.safetensors"))
    with pytest.raises(AttrWidgetsError, match="lacks b_enc"):
        load_transcoder(tmp_path / "a")

    tc.save(tmp_path / "b", format="circuit-tracer")
    layer = load_file(str(tmp_path / "b" / "layer_1.safetensors"))
    layer["W_dec"] = torch.randn(F, D + 1)
    save_file(layer, str(tmp_path / "b" / "layer_1.safetensors"))
    with pytest.raises(AttrWidgetsError, match=r"layer 1: W_dec has shape \(12, 9\), expected \(12, 8\)"):
        load_transcoder(tmp_path / "b")

    tc.save(tmp_path / "c")
    (tmp_path / "c" / "transcoder.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(AttrWidgetsError, match="not a readable safetensors"):
        load_transcoder(tmp_path / "c")

    tc.save(tmp_path / "d", format="circuit-tracer")
    layer = load_file(str(tmp_path / "d" / "layer_0.safetensors"))
    del layer["activation_function.threshold"]
    save_file(layer, str(tmp_path / "d" / "layer_0.safetensors"))
    with pytest.raises(AttrWidgetsError, match="have a threshold"):
        load_transcoder(tmp_path / "d")


def test_save_rejects_unknown_format_and_bad_shapes(tmp_path):
    tc = make()
    with pytest.raises(AttrWidgetsError, match="Unknown transcoder format"):
        tc.save(tmp_path, format="pickle")
    tc.b_dec[1] = torch.zeros(D + 2)
    with pytest.raises(AttrWidgetsError, match="b_dec"):
        tc.save(tmp_path)


def test_bfloat16_storage_and_load_dtype(tmp_path):
    tc = make("clt", "jumprelu")
    tc.save(tmp_path, dtype=torch.bfloat16)
    back = load_transcoder(tmp_path)
    assert back.W_enc[0].dtype == torch.bfloat16
    back32 = load_transcoder(tmp_path, dtype=torch.float32)
    assert back32.W_dec[0].dtype == torch.float32
    torch.testing.assert_close(back32.W_dec[0], tc.W_dec[0], atol=0.05, rtol=0.02)
