"""aw.train_transcoder on tiny models: the loss falls, variance explained rises, JumpReLU thresholds learn,
a CLT writes to later layers, checkpoints resume exactly and survive an interrupt, bad input is refused."""

from __future__ import annotations

import random

import pytest
import torch

from attrwidgets.core.graph import harvest
from attrwidgets.core.graph.checkpoint import CHECKPOINT, load_transcoder
from attrwidgets.core.graph.train import train_transcoder
from attrwidgets.core.graph.train_model import JumpReLU, TrainableTranscoder
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import tiny_handle

WORDS = ["the", "cat", "sat", "on", "the", "mat", "and", "the", "dog", "sat", "on", "the", "log", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "capital", "of", "France", "is", "Paris", "Italy", "Rome", "what", "answer", "briefly", "clearly", "helpful", "assistant", "tokens", "text"]


def corpus(n=60, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))) for _ in range(n)]


FAST = {"n_features": 48, "batch_tokens": 64, "max_tokens": 1200, "target_l0": 8, "progress": False, "lr": 3e-3}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: a second thread only adds synchronisation (and spins against other jobs on a shared
    machine), so these tests run single-threaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def llama():
    return tiny_handle("llama")


def test_loss_falls_and_variance_explained_rises(llama):
    losses = []
    trained = train_transcoder(llama, corpus(), training_steps=120, callback=lambda step, m: losses.append(m["loss"]), **FAST)
    untrained = train_transcoder(llama, corpus(), training_steps=1, **FAST)
    assert len(losses) == 120
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10
    fve_after, fve_before = trained.config["figures"]["fve"], untrained.config["figures"]["fve"]
    assert all(a > b + 0.05 for a, b in zip(fve_after, fve_before)), (fve_before, fve_after)
    l0 = trained.config["figures"]["l0"]
    assert all(0 < v < 48 for v in l0)
    training = trained.config["training"]
    assert training["data"] == "texts" and training["eval_tokens"] > 0 and training["train_tokens_per_s"] > 0


def test_jumprelu_straight_through_estimator():
    pre = torch.tensor([[[0.50, 0.96, 1.02, 2.0]]], requires_grad=True)  # (L=1, B=1, F=4)
    threshold = torch.full((1, 1, 4), 1.0, requires_grad=True)
    out = JumpReLU.apply(pre, threshold, 0.1)
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.0, 1.02, 2.0]]]))  # strictly greater, as circuit-tracer
    out.sum().backward()
    assert pre.grad.tolist() == [[[0.0, 0.0, 1.0, 1.0]]]  # no straight-through on the input
    # rectangle kernel of width 0.1 around the threshold: only 0.96 and 1.02 are inside; d/dt = -t / bandwidth
    torch.testing.assert_close(threshold.grad, torch.tensor([[[0.0, -10.0, -10.0, 0.0]]]))


def test_thresholds_receive_gradients_and_move(llama):
    module = TrainableTranscoder("plt", "jumprelu", 2, 32, 16)
    x, y = torch.randn(200, 2, 32), torch.randn(200, 2, 32)
    module.initialise(x, y, start_l0=4, generator=torch.Generator().manual_seed(0))
    loss, _, _ = module.losses(x.transpose(0, 1) / module.x_scale.view(2, 1, 1),
                               y.transpose(0, 1) / module.y_scale.view(2, 1, 1), 1e-3, 10.0)
    loss.backward()
    assert module.log_threshold.grad is not None and module.log_threshold.grad.abs().sum() > 0
    # steered only: one threshold per layer; with the learning phase every feature has moved off it
    steered = train_transcoder(llama, corpus(), training_steps=60, threshold_phase=0.0, **FAST).threshold
    learned = train_transcoder(llama, corpus(), training_steps=60, threshold_phase=0.5, **FAST).threshold
    assert all(float(t.max() - t.min()) == 0.0 for t in steered)
    assert all(float(t.max() - t.min()) > 1e-3 for t in learned)


def test_steered_phase_holds_the_target_l0(llama):
    seen = {}
    train_transcoder(llama, corpus(), training_steps=40, threshold_phase=0.25,
                     callback=lambda step, m: seen.__setitem__(step, m["l0"]), **FAST)
    for step in range(5, 30):  # steered steps: each batch averages target_l0 = 8 active features per token
        assert all(6 <= v <= 10 for v in seen[step]), (step, seen[step])


@pytest.mark.parametrize("kind,skip", [("plt", False), ("plt", True), ("clt", False)])
def test_export_reproduces_the_trained_module(kind, skip):
    """The exported Transcoder (scales folded back) computes exactly what the module trained."""
    torch.manual_seed(0)
    module = TrainableTranscoder(kind, "jumprelu", 3, 16, 24, skip=skip)
    x, y = torch.randn(300, 3, 16) * 3, torch.randn(300, 3, 16) * 5 + 1
    module.initialise(x, y, start_l0=6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        acts, out = module(x.transpose(0, 1) / module.x_scale.view(3, 1, 1))
        out = out * module.y_scale.view(3, 1, 1)
    tc = module.export()
    xs = [x[:, l] for l in range(3)]
    tc_acts = [tc.activate(l, tc.encode(l, xs[l])) for l in range(3)]
    for l in range(3):
        torch.testing.assert_close(tc_acts[l], acts[l], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(tc.reconstruct(tc_acts, xs, l), out[l], atol=1e-3, rtol=1e-4)


def test_clt_trains_and_writes_to_later_layers(llama):
    tc = train_transcoder(llama, corpus(), kind="clt", training_steps=80, **FAST)
    assert tc.kind == "clt" and tc.W_dec[0].shape == (48, 2, 32) and tc.W_dec[1].shape == (48, 1, 32)
    assert tc.decoder(0, 1).norm() > 0.05 * tc.decoder(0, 0).norm()  # learned: exemplar init starts it at 0
    assert all(v > 0.1 for v in tc.config["figures"]["fve"])


@pytest.mark.parametrize("arch", ["gpt2", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "olmo2", "gpt_neox"])
def test_other_architectures_and_activations(arch):
    handle = tiny_handle(arch)
    relu = train_transcoder(handle, corpus(), activation="relu", training_steps=40, **FAST)
    assert relu.activation == "relu" and relu.threshold is None and relu.config["figures"]["fve_mean"] > 0
    topk = train_transcoder(handle, corpus(), activation="topk", top_k=5, training_steps=40, **FAST)
    assert topk.top_k == 5 and all(v <= 5 for v in topk.config["figures"]["l0"])


def test_self_sampled_text_is_the_default(llama):
    tc = train_transcoder(llama, None, training_steps=5, **{**FAST, "max_tokens": 300})
    assert tc.config["training"]["data"] == "self-sampled" and tc.config["figures"]["eval_tokens"] > 0


def test_sampled_harvest_holds_out_at_most_n_eval_tokens_without_a_copy(llama, monkeypatch):
    """The held-out tokens (recorded again by the real model) land in spare rows of the training storage: the
    harvest is one allocation of n_tokens + n_eval rows, the last n_eval of them exactly what the real model
    recorded for the held-out windows."""
    calls = {"harvest_texts": [], "_sample": []}

    def spy(name):
        original = getattr(harvest, name)

        def call(*args, **kwargs):
            out = original(*args, **kwargs)
            calls[name].append(out)
            return out
        monkeypatch.setattr(harvest, name, call)

    spy("harvest_texts")
    spy("_sample")
    data = harvest.harvest_sampled(llama, 400, seed=2, new_tokens=24, batch_size=8, progress=False)
    (held_x, held_y), = [(r.inputs, r.outputs) for r in calls["harvest_texts"]]
    (sink, _), = calls["_sample"]
    assert data.n_eval == held_x.shape[0] == 20  # 5% of 400, the last window cut to fit
    assert data.inputs.shape[0] == 420 and data.inputs.data_ptr() == sink.inputs.data_ptr()
    assert data.outputs.data_ptr() == sink.outputs.data_ptr()
    eval_x, eval_y = data.split()[1]
    assert torch.equal(eval_x, held_x) and torch.equal(eval_y, held_y)


def test_sampled_harvest_equals_a_plain_forward(llama):
    """Recording during generate() (prefill + one token per step, finished rows dropped, position 0 dropped)
    gives exactly the activations a plain forward of the same tokens gives."""
    generated, original = [], llama.model.generate

    def spy(**kwargs):
        out = original(**kwargs)
        generated.append((kwargs["attention_mask"], out))
        return out

    llama.model.generate = spy
    try:
        sink, held_out = harvest._sample(llama, 150, seed=1, new_tokens=12, batch_size=4, n_eval=0,
                                         progress=False)
        recorded = sink.finish("self-sampled", 0.0, 0)
    finally:
        llama.model.generate = original
    assert held_out == [] and recorded.inputs.shape[0] == 150
    eos, rows = harvest.eos_ids(llama), []
    for mask, sequences in generated:
        width = mask.shape[1]
        for row in range(sequences.shape[0]):
            tokens = sequences[row, width - int(mask[row].sum()):].tolist()
            fed, new = tokens[: int(mask[row].sum())], sequences[row, width:-1].tolist()
            for token in new:  # every generated token but the last is fed back, until an end-of-sequence
                fed.append(token)
                if token in eos:
                    break
            rows.append(fed)
    expected = harvest.harvest_texts(llama, [], 150, token_windows=rows, eval_fraction=0.0, progress=False)
    for got, want in ((recorded.inputs, expected.inputs), (recorded.outputs, expected.outputs)):
        # cached and uncached attention round differently in the last fp32 bits: at most one bfloat16 step apart
        torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-2)
        assert (got != want).float().mean() < 0.01


def test_figures_equal_an_independent_computation(llama):
    """The reported fraction of variance explained and L0 (train.evaluate on harvested activations) equal a
    float64 computation from the transcoder's raw weights on activations our own hooks record from a plain
    forward of new text. (A run once reported FVE 1.0 at L0 0: repeated training texts made its held-out
    tokens duplicates of training ones; this pins the figure itself to the definition.)"""
    from attrwidgets.core.graph.train import evaluate

    tc = train_transcoder(llama, corpus(), training_steps=60, **FAST)
    texts = corpus(15, seed=7)
    data = harvest.harvest_texts(llama, texts, 10_000, eval_fraction=0.0, progress=False)
    got = evaluate(tc, data.inputs, data.outputs)

    layers, recorded = llama.model.model.layers, {}
    bos = llama.tokenizer.bos_token_id if llama.tokenizer.bos_token_id is not None else llama.tokenizer.eos_token_id
    hooks = [m.register_forward_hook(lambda mod, args, out, key=(name, i): recorded.setdefault(key, []).append(
        (out[0] if isinstance(out, tuple) else out)[0, 1:].double()))  # position 0 is not used
        for i, block in enumerate(layers) for name, m in (("x", block.post_attention_layernorm), ("y", block.mlp))]
    try:
        with torch.no_grad():
            for text in texts:
                ids = [bos] + llama.tokenizer(text, add_special_tokens=False)["input_ids"]
                llama.model(input_ids=torch.tensor([ids]))
    finally:
        for hook in hooks:
            hook.remove()
    for layer in range(len(layers)):
        x, y = torch.cat(recorded["x", layer]), torch.cat(recorded["y", layer])
        W_enc, b_enc, thr, W_dec, b_dec, W_skip = (t[layer].double() for t in (tc.W_enc, tc.b_enc, tc.threshold,
                                                                                tc.W_dec, tc.b_dec, tc.W_skip))
        pre = x @ W_enc.T + b_enc
        act = pre * (pre > thr)
        out = act @ W_dec + b_dec + x @ W_skip.T
        fve = 1 - (y - out).pow(2).sum() / (y - y.mean(0)).pow(2).sum()
        l0 = (act > 0).sum(1).double().mean()
        assert data.inputs.shape[0] == x.shape[0]
        # the harvest stores bfloat16: a few features sit within one rounding step of their threshold
        assert abs(got["fve"][layer] - fve.item()) < 0.003, (layer, got["fve"][layer], fve.item())
        assert abs(got["l0"][layer] - l0.item()) <= 0.01 * l0.item() + 0.05, (layer, got["l0"][layer], l0.item())
    assert 0.2 < min(got["fve"]) < 0.999 and min(got["l0"]) > 0  # a trained, sparse, imperfect transcoder


def test_repeated_texts_are_recorded_once(llama):
    """Held-out windows are the last ones; were repeats kept, they would be copies of training windows and the
    held-out FVE would be that of memorised text (0.94 against 0.64 on new text, measured)."""
    once = harvest.harvest_texts(llama, corpus(6), 10_000, progress=False)
    repeated = harvest.harvest_texts(llama, corpus(6) * 40, 10_000, progress=False)
    assert repeated.inputs.shape[0] == once.inputs.shape[0] and repeated.n_eval == once.n_eval
    torch.testing.assert_close(repeated.inputs, once.inputs, atol=0, rtol=0)


def test_interrupt_leaves_a_checkpoint_and_resume_is_exact(llama, tmp_path):
    settings = dict(training_steps=40, checkpoint_every=10, **FAST)
    reference = train_transcoder(llama, corpus(), **settings)

    def interrupt(step, metrics):
        if step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_transcoder(llama, corpus(), save=tmp_path, callback=interrupt, **settings)
    assert (tmp_path / CHECKPOINT).exists() and not (tmp_path / "config.json").exists()
    partial = load_transcoder(tmp_path)  # an interrupted run's folder loads: the transcoder at step 20
    assert partial.config["training"]["checkpoint_step"] == 20 and partial.n_features == 48

    seen = []
    resumed = train_transcoder(llama, corpus(), save=tmp_path, callback=lambda s, m: seen.append(s), **settings)
    assert seen[0] == 21 and seen[-1] == 40  # continued after the checkpoint's step
    assert resumed.config["training"]["resumed_from_step"] == 20
    for a, b in zip(resumed.W_dec + resumed.W_enc, reference.W_dec + reference.W_enc):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)  # same batches, same Adam state: same result
    assert not (tmp_path / CHECKPOINT).exists() and (tmp_path / "config.json").exists()

    again = []  # finished: the saved transcoder comes back without training
    loaded = train_transcoder(llama, corpus(), save=tmp_path, callback=lambda s, m: again.append(s), **settings)
    assert again == [] and torch.equal(loaded.W_dec[0], resumed.W_dec[0])


def test_checkpoint_from_other_settings_is_refused(llama, tmp_path):
    def stop(step, metrics):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_transcoder(llama, corpus(), save=tmp_path, training_steps=20, checkpoint_every=1, callback=stop, **FAST)
    with pytest.raises(AttrWidgetsError, match="n_features differ"):
        train_transcoder(llama, corpus(), save=tmp_path, training_steps=20, **{**FAST, "n_features": 32})
    tc = train_transcoder(llama, corpus(), save=tmp_path, training_steps=20, resume=False, **{**FAST, "n_features": 32})
    assert tc.n_features == 32


@pytest.mark.parametrize("kwargs,match", [
    ({"texts": []}, "yield no tokens"),
    ({"texts": ["", ""]}, "yield no tokens"),
    ({"texts": iter(())}, "yield no tokens"),
    ({"texts": "one string"}, "not one string"),
    ({"texts": [1, 2]}, "must hold strings"),
    ({"n_features": 0}, "n_features must be a positive integer"),
    ({"n_features": -3}, "n_features must be a positive integer"),
    ({"kind": "sae"}, "Unknown transcoder kind 'sae'"),
    ({"activation": "gelu"}, "Unknown activation 'gelu'"),
    ({"training_steps": 0}, "steps must be a positive integer"),
    ({"training_steps": 2.5}, "steps must be a positive integer"),
    ({"lr": -1.0}, "lr must be a positive number"),
    ({"sparsity": -1e-3}, "sparsity must be a number >= 0"),
    ({"memory_budget": "1KiB"}, "memory_budget='1KiB' holds only"),
    ({"memory_budget": "lots"}, "is not a size"),
    ({"kind": "clt", "skip": True}, "skip=True is for per-layer"),
    ({"activation": "relu", "top_k": 4}, "top_k is for activation='topk'"),
    ({"device": "tpu"}, "Unknown device"),
])
def test_bad_input(llama, kwargs, match):
    args = {"texts": corpus(4), "training_steps": 2, **FAST}
    args.update(kwargs)
    texts = args.pop("texts")
    with pytest.raises(AttrWidgetsError, match=match):
        train_transcoder(llama, texts, **args)


@pytest.mark.parametrize("kind,activation", [("plt", "jumprelu"), ("plt", "relu"), ("plt", "topk"),
                                             ("clt", "jumprelu"), ("clt", "topk")])
def test_sparse_step_equals_dense_step(kind, activation):
    """Training decodes only the units with a value or a gradient; loss and every gradient match the dense
    forward (JumpReLU's straight-through threshold gradient included)."""
    torch.manual_seed(0)
    module = TrainableTranscoder(kind, activation, 3, 16, 40, top_k=5 if activation == "topk" else None,
                                 skip=kind == "plt", bandwidth=0.5)
    x, y = torch.randn(64, 3, 16) * 3, torch.randn(64, 3, 16) * 5
    module.initialise(x, y, start_l0=6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # later layers' CLT decoders start at 0: make them matter
    xn, yn = x.transpose(0, 1) / module.x_scale.view(3, 1, 1), y.transpose(0, 1) / module.y_scale.view(3, 1, 1)
    results = []
    for sparse in (True, False):
        module.zero_grad()
        loss, _, l0 = module.losses(xn, yn, 0.05, 10.0, sparse=sparse)
        loss.backward()
        results.append((loss.detach(), l0, {n: p.grad.clone() for n, p in module.named_parameters()}))
    (loss_s, l0_s, grads_s), (loss_d, l0_d, grads_d) = results
    torch.testing.assert_close(loss_s, loss_d)
    torch.testing.assert_close(l0_s, l0_d)
    for name in grads_d:
        torch.testing.assert_close(grads_s[name], grads_d[name], atol=1e-5, rtol=1e-4, msg=name)
    if activation == "jumprelu":
        assert grads_s["log_threshold"].abs().sum() > 0


def test_cli_train_transcoder(tmp_path, llama):
    """attrwidgets train-transcoder (cli_transcoder.py): texts from a file, both layouts written."""
    import argparse

    from attrwidgets.cli_transcoder import add_train_parser, read_texts, run_train

    model_dir = tmp_path / "model"
    llama.model.save_pretrained(model_dir)
    llama.tokenizer.save_pretrained(model_dir)
    texts = tmp_path / "texts.txt"
    texts.write_text("\n\n".join(corpus(30)))
    assert len(list(read_texts([texts]))) == 30
    sub = argparse.ArgumentParser().add_subparsers(dest="command")
    add_train_parser(sub)
    args = sub.choices["train-transcoder"].parse_args(
        ["-o", str(tmp_path / "tc"), "--model", str(model_dir), "--texts", str(texts), "--features", "32",
         "--steps", "10", "--batch-tokens", "64", "--max-tokens", "800", "--target-l0", "8", "--format", "both",
         "--device", "cpu"])
    assert run_train(args) == 0
    ours, ct = load_transcoder(tmp_path / "tc"), load_transcoder(tmp_path / "tc-ct")
    assert ours.n_features == 32 and ours.W_skip is not None
    torch.testing.assert_close(ours.W_dec[1], ct.W_dec[1])
    (tmp_path / "bad.jsonl").write_text('{"txt": 1}\n')
    with pytest.raises(AttrWidgetsError, match="'text' field"):
        list(read_texts([tmp_path / "bad.jsonl"]))
