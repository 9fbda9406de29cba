"""aw.train_transcoder: harvest MLP inputs/outputs, train a per-layer or cross-layer transcoder, save it.

Loss (docs/methods/graph.md): normalised MSE per layer (1 - fraction of variance explained) + sparsity *
sum_i tanh(c * ||W_dec,i|| * a_i); ReLU, TopK (k fixes L0; no sparsity term) or JumpReLU in two phases:
first one threshold per layer steered so tokens average `target_l0` active features (BatchTopK: a short run
from scratch otherwise closes most features, README "Transcoders"), then, for the last `threshold_phase` of
the steps, every feature's own threshold learned by the straight-through estimator (train_model.py). Every
layer trains in one batched step. With save=dir a checkpoint is written every `checkpoint_every` steps or
two minutes (one safetensors file, written then renamed: an interrupt at any moment leaves the previous one
whole) and resume=True continues from it.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch

from attrwidgets.core.estimate import parse_bytes
from attrwidgets.core.graph import checkpoint as ckpt
from attrwidgets.core.graph.harvest import Harvest, bytes_per_token, harvest_sampled, harvest_texts
from attrwidgets.core.graph.train_model import TrainableTranscoder, TrainSettings, threshold_switch
from attrwidgets.core.graph.transcoder import ACTIVATIONS, KINDS, Transcoder
from attrwidgets.core.graph.transcoder_io import load_transcoder
from attrwidgets.errors import AttrWidgetsError, checked_keywords, renamed_keywords

# Defaults sized for SmolLM2-135M on 2 CPU cores (under 10 minutes, harvest included): README "Transcoders".
DEFAULT_FEATURES_PER_DIM = 4  # n_features = 4 * d_model
DEFAULT_STEPS = 400
DEFAULT_BATCH_TOKENS = 256
DEFAULT_LR = 2e-3
DEFAULT_MAX_TOKENS = 30_000
DEFAULT_MEMORY_BUDGET = "4GiB"
DEFAULT_SPARSITY = 1e-3
DEFAULT_TARGET_L0 = 64
DEFAULT_THRESHOLD_PHASE = 0.3
CHECKPOINT_SECONDS = 120.0
DEFAULT_SKIP = True  # per-layer only: the linear part of each MLP, fitted by least squares at the start


def _check(name, value, kind=int, low=0):
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or value <= low:
        what = "a positive integer" if kind is int else "a positive number"
        raise AttrWidgetsError(f"{name} must be {what}; got {value!r}.")


def _settings(kind, activation, n_features, steps, batch_tokens, sparsity, sparsity_c, lr, top_k, skip, seed,
              bandwidth, target_l0, threshold_phase) -> TrainSettings:
    if kind not in KINDS:
        raise AttrWidgetsError(f"Unknown transcoder kind {kind!r}: use 'plt' (per-layer) or 'clt' (cross-layer).")
    if activation not in ACTIVATIONS:
        raise AttrWidgetsError(f"Unknown activation {activation!r}: use one of {', '.join(ACTIVATIONS)}.")
    for name, value in (("n_features", n_features), ("training_steps", steps), ("batch_tokens", batch_tokens),
                        ("target_l0", target_l0)):
        _check(name, value)
    for name, value in (("lr", lr), ("sparsity_c", sparsity_c), ("bandwidth", bandwidth)):
        _check(name, value, float)
    if isinstance(threshold_phase, bool) or not isinstance(threshold_phase, (int, float)) or not 0 <= threshold_phase <= 1:
        raise AttrWidgetsError(f"threshold_phase must be a fraction in [0, 1]; got {threshold_phase!r}.")
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or sparsity < 0:
        raise AttrWidgetsError(f"sparsity must be a number >= 0; got {sparsity!r}.")
    if activation == "topk":
        top_k = target_l0 if top_k is None else top_k
        _check("top_k", top_k)
    elif top_k is not None:
        raise AttrWidgetsError(f"top_k is for activation='topk' only (got activation={activation!r}).")
    if skip and kind == "clt":
        raise AttrWidgetsError("skip=True is for per-layer transcoders (kind='plt'): circuit-tracer's cross-layer "
                               "format has no skip connection.")
    return TrainSettings(kind, activation, int(n_features), int(steps), int(batch_tokens), float(sparsity),
                         float(sparsity_c), float(lr), top_k, bool(skip), int(seed), float(bandwidth),
                         int(target_l0), float(threshold_phase))


def _site(adapter, role: str, fallback: str, reads: bool = True) -> str:
    """Where the harvest hooks (core/graph/harvest.py): a module's output, or the MLP's own input."""
    path = getattr(adapter, role)
    if path is None:
        return f"{adapter.blocks}.{{i}}.{fallback} ({'input' if reads else 'output'})"
    return f"{adapter.blocks}.{{i}}.{path} (output)"


@renamed_keywords(steps="training_steps")
@checked_keywords
def train_transcoder(model=None, texts=None, *, kind: str = "plt", n_features: int | None = None,
                     activation: str = "jumprelu", training_steps: int = DEFAULT_STEPS,
                     batch_tokens: int = DEFAULT_BATCH_TOKENS, sparsity: float = DEFAULT_SPARSITY,
                     sparsity_c: float = 10.0,
                     lr: float = DEFAULT_LR, device="auto", save=None, progress: bool = True,
                     max_tokens: int = DEFAULT_MAX_TOKENS, memory_budget=DEFAULT_MEMORY_BUDGET,
                     resume: bool = True, seed: int = 0, top_k: int | None = None, skip: bool | None = None,
                     checkpoint_every: int | None = None, target_l0: int = DEFAULT_TARGET_L0,
                     threshold_phase: float = DEFAULT_THRESHOLD_PHASE, bandwidth: float = 0.1,
                     context: int = 128, mixed_precision: bool | None = None, callback=None) -> Transcoder:
    """Train a transcoder for every MLP of `model` (a ModelHandle, a hub id / folder, or None: the default).

    kind: "plt" (per-layer: layer l's features read its MLP input and write its output) or "clt"
    (cross-layer: they write to the MLP outputs of layers l..L-1). activation: "jumprelu" (a per-layer
    threshold steered to target_l0 active features per token, then per-feature thresholds learned by a
    straight-through estimator for the last threshold_phase of the training steps), "relu" or "topk" (top_k,
    default target_l0). skip (PLT; default True): a linear skip connection per layer.
    training_steps: optimizer steps (`steps=` is its old name). texts: any iterable of strings; None lets the model sample its own text from varied prompts.
    Activations (max_tokens, capped by memory_budget, stored as bfloat16) are harvested once and shuffled.
    save: a folder; the transcoder is written there (aw.load_transcoder reads it back) and checkpoints go
    there during training (every checkpoint_every steps; None: every 2 minutes); resume=True continues from
    its checkpoint. callback(step, metrics) runs after every step (raise from it to stop). mixed_precision:
    bfloat16 matmuls (fp32 weights and loss); None: where the hardware has them (CUDA, CPUs with
    AVX512-BF16/AMX: 1.6x faster on SmolLM2, same figures). Held-out fraction of variance explained and L0 per
    layer end up in transcoder.config["figures"].
    """
    from attrwidgets.models import as_handle, resolve_device

    handle = as_handle(model)
    n_layers = handle.adapter.n_layers(handle.model)
    d_model = handle.adapter.embedding(handle.model).weight.shape[1]
    n_features = DEFAULT_FEATURES_PER_DIM * d_model if n_features is None else n_features
    skip = (DEFAULT_SKIP and kind == "plt") if skip is None else skip
    settings = _settings(kind, activation, n_features, training_steps, batch_tokens, sparsity, sparsity_c, lr, top_k,
                         skip, seed, bandwidth, target_l0, threshold_phase)
    _check("max_tokens", max_tokens)
    _check("context", context, low=1)
    if checkpoint_every is not None:
        _check("checkpoint_every", checkpoint_every)
    budget = parse_bytes(memory_budget, "memory_budget")
    per_token = bytes_per_token(n_layers, d_model)
    n_tokens = min(max_tokens, budget // per_token)
    if n_tokens < 64:
        raise AttrWidgetsError(
            f"memory_budget={memory_budget!r} holds only {n_tokens} tokens of activations ({per_token} bytes "
            f"each for {n_layers} layers x d_model={d_model}): raise it to at least {64 * per_token} bytes.")
    train_device = resolve_device(device)
    folder = Path(save).expanduser() if save is not None else None
    model_info = {"id": handle.model_id, "architecture": handle.adapter.name, "n_layers": n_layers,
                  "d_model": d_model, "input": _site(handle.adapter, "norm_mlp", "mlp"),
                  "output": _site(handle.adapter, "post_norm_mlp", "mlp", reads=False)}

    state = ckpt.read(folder, settings, model_info) if (folder is not None and resume) else None
    if state is not None and state.get("finished"):
        if progress:
            print(f"attrwidgets: {folder} already holds this transcoder (pass resume=False to train again).")
        return load_transcoder(folder)

    started = time.perf_counter()
    data = _harvest(handle, texts, n_tokens, seed=seed, context=context, progress=progress)
    harvest_s = time.perf_counter() - started
    module = TrainableTranscoder(settings.kind, settings.activation, n_layers, d_model, settings.n_features,
                                 top_k=settings.top_k, skip=settings.skip, bandwidth=settings.bandwidth)
    (train_x, train_y), (eval_x, eval_y) = data.split()
    generator = torch.Generator().manual_seed(seed)
    first_step = 0
    if state is None:
        sample = torch.randperm(train_x.shape[0], generator=generator)[:4096]
        module.initialise(train_x[sample], train_y[sample], start_l0=settings.target_l0, generator=generator)
    module.to(train_device)
    optimizer = adam(module.parameters(), settings.lr)
    if state is not None:
        first_step = ckpt.restore(state, module, optimizer)
    every = checkpoint_every  # None: every CHECKPOINT_SECONDS of training

    train_started = time.perf_counter()
    amp = bf16_matmuls(train_device) if mixed_precision is None else bool(mixed_precision)
    _fit(module, optimizer, settings, train_x, train_y, first_step, every, folder, model_info, progress, callback,
         amp)
    train_s = time.perf_counter() - train_started
    trained_tokens = (settings.steps - first_step) * settings.batch_tokens

    transcoder = module.cpu().export()
    figures = evaluate(transcoder, eval_x, eval_y)
    transcoder.config = {
        "model": model_info,
        "hooks": {"feature_input_hook": "mlp.hook_in", "feature_output_hook": "mlp.hook_out"},
        "training": {**asdict(settings), "data": data.source, "tokens": int(train_x.shape[0]),
                     "eval_tokens": int(eval_x.shape[0]), "harvest_s": round(harvest_s, 1),
                     "train_s": round(train_s, 1), "train_tokens_per_s": round(trained_tokens / max(train_s, 1e-9)),
                     "harvest_tokens_per_s": round(data.inputs.shape[0] / max(harvest_s, 1e-9)),
                     "resumed_from_step": first_step, "device": str(train_device),
                     "mixed_precision": amp},
        "figures": figures,
    }
    if folder is not None:
        transcoder.save(folder)
        ckpt.finish(folder)
    return transcoder


def _harvest(handle, texts, n_tokens, *, seed, context, progress) -> Harvest:
    if texts is None:
        return harvest_sampled(handle, n_tokens, seed=seed, progress=progress)
    return harvest_texts(handle, texts, n_tokens, context=context, progress=progress)


def bf16_matmuls(device: torch.device) -> bool:
    """Whether bfloat16 matmuls are native here (emulated ones would be slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # older torch: no probe, stay in fp32
        return False


def adam(parameters, lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel where torch has one: one pass over each tensor instead of a dozen, which on
    SmolLM2's 90M transcoder parameters cut the optimizer step from 407 to 57 ms of a ~1.1 s step (2 CPU
    cores). Older torch builds without it get the plain one (the same update up to rounding)."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, betas=(0.9, 0.999), fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(parameters, lr=lr, betas=(0.9, 0.999))


def learning_rate_factor(step: int, steps: int) -> float:
    """Short linear warm-up, constant, then linear decay to 0 over the last 30% (a decay ends a short run
    much lower than a constant rate would)."""
    warmup = max(1, min(100, steps // 20))
    if step < warmup:
        return (step + 1) / warmup
    decay_start = int(steps * 0.7)
    if step < decay_start:
        return 1.0
    return max(0.0, (steps - step) / max(1, steps - decay_start))


def batch_indices(step: int, n: int, batch: int, seed: int) -> torch.Tensor:
    """The batch of `step`: each epoch is a fresh seeded permutation, so a resumed run sees the same batches."""
    per_epoch = max(1, n // batch)
    epoch, offset = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return order[offset * batch:(offset + 1) * batch]


def _fit(module, optimizer, settings, train_x, train_y, first_step, every, folder, model_info, progress, callback,
         mixed_precision):
    from tqdm.auto import tqdm

    device = next(module.parameters()).device
    n, L = train_x.shape[0], module.n_layers
    batch = min(settings.batch_tokens, n)
    x_scale, y_scale = module.x_scale.view(L, 1, 1), module.y_scale.view(L, 1, 1)
    bar = tqdm(total=settings.steps, initial=first_step, desc=f"training {settings.kind.upper()}", unit="step",
               disable=not progress)
    ema_mse = ema_l0 = None
    last_write = time.perf_counter()
    switch = threshold_switch(settings)
    module.steer_l0 = settings.target_l0 if first_step < switch else None
    try:
        for step in range(first_step, settings.steps):
            if step == switch:
                module.begin_threshold_learning()
            idx = batch_indices(step, n, batch, settings.seed)
            x = train_x[idx].to(device, torch.float32).transpose(0, 1) / x_scale
            y = train_y[idx].to(device, torch.float32).transpose(0, 1) / y_scale
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * learning_rate_factor(step, settings.steps)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed_precision):
                loss, mse, l0 = module.losses(x, y, settings.sparsity, settings.sparsity_c)
            if not torch.isfinite(loss):
                raise AttrWidgetsError(f"The training loss became {loss.item()} at step {step}: lower lr "
                                       f"(now {settings.lr}) or sparsity (now {settings.sparsity}).")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema_mse = mse if ema_mse is None else 0.9 * ema_mse + 0.1 * mse
            ema_l0 = l0 if ema_l0 is None else 0.9 * ema_l0 + 0.1 * l0
            done = step + 1
            due = done % every == 0 if every else time.perf_counter() - last_write >= CHECKPOINT_SECONDS
            if folder is not None and due and done < settings.steps:  # the finished transcoder is saved next
                ckpt.write(folder, module, optimizer, done, settings, model_info)
                last_write = time.perf_counter()
            if progress and (done % 10 == 0 or done == settings.steps):
                fve = 1 - ema_mse
                bar.set_postfix_str(f"loss={loss.item():.3f} FVE={fve.mean():.2f} (min {fve.min():.2f}) "
                                    f"L0={ema_l0.mean():.0f} (max {ema_l0.max():.0f})", refresh=False)
            bar.update(1)
            if callback is not None:
                callback(done, {"loss": loss.item(), "fve": (1 - mse).tolist(), "l0": l0.tolist()})
        if module.steer_l0:  # threshold_phase=0: the steered per-layer thresholds are the final ones
            module.begin_threshold_learning()
    except KeyboardInterrupt:
        if folder is not None and progress:
            print(f"\nattrwidgets: interrupted; the last checkpoint in {folder} is intact: call again with "
                  "resume=True to continue from it.")
        raise
    finally:
        bar.close()


@torch.no_grad()
def evaluate(transcoder: Transcoder, inputs: torch.Tensor, outputs: torch.Tensor, chunk: int = 1024) -> dict:
    """Held-out fraction of variance explained (1 - SSE / SST) and mean L0 per layer, in real units."""
    L = transcoder.n_layers
    sse, l0 = torch.zeros(L, dtype=torch.float64), torch.zeros(L, dtype=torch.float64)
    mean = outputs.double().mean(0)  # (L, D)
    sst = (outputs.double() - mean).pow(2).sum(dim=(0, 2))
    for start in range(0, inputs.shape[0], chunk):
        xs = [inputs[start:start + chunk, l].float() for l in range(L)]
        acts = [transcoder.activate(l, transcoder.encode(l, xs[l])) for l in range(L)]
        for l in range(L):
            recon = transcoder.reconstruct(acts, xs, l)
            sse[l] += (recon.double() - outputs[start:start + chunk, l].double()).pow(2).sum()
            l0[l] += (acts[l] > 0).sum()
    n = max(inputs.shape[0], 1)
    fve = (1 - sse / sst.clamp_min(1e-30)).tolist()
    l0s = (l0 / n).tolist()
    return {"fve": [round(v, 4) for v in fve], "l0": [round(v, 2) for v in l0s],
            "fve_mean": round(sum(fve) / L, 4), "fve_min": round(min(fve), 4),
            "l0_mean": round(sum(l0s) / L, 2), "eval_tokens": int(inputs.shape[0])}
