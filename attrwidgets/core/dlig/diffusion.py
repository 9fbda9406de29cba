"""aw.dlig(): a generic masked-diffusion sampler (LLaDA / Dream style) with layer IG at every denoising step.

The sampler appends gen_length mask tokens to the prompt, then at each step predicts every masked position
in parallel from one forward of the whole sequence, and unmasks the k most confident predictions of the
current block (remasking="low_confidence"; "random" picks k masked positions at random), k from an even
schedule so each block is fully unmasked after its share of the steps (semi-autoregressive blocks when
block_length < gen_length). temperature > 0 samples with Gumbel noise from a seeded generator.

Right after each step chooses its tokens, layer IG (core/token/methods/layer_ig.py) explains them on the sequence as
it stood at that step: the target of an unmasked token is its own logit (or log-probability) AT ITS OWN
POSITION, never a vocabulary mean or the last position, so each unmasked token is one row.

The contract a model must meet: `model(input_ids=ids).logits` gives (1, T, V) logits at every position of a
sequence containing mask tokens, attending in both directions; a mask token id (the tokenizer's
mask_token_id, config.mask_token_id, or mask_token_id=...); and an ArchitectureAdapter entry for layer IG
(core/adapters.py), since layer IG resumes the model's forward after the layer. Dream and LLaDA checkpoints load
with aw.load_model(path, masked_lm=True) through our own code, bidirectional, with their mask token from the
checkpoint (core/diffusion_layouts.py, docs/methods/dlig.md).
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from attrwidgets.core.dlig.layers import resolve_layer
from attrwidgets.core.dlig.result import DiffusionAttribution
from attrwidgets.core.estimate import refuse_if_too_big
from attrwidgets.core.forward import ComputationCancelled, TargetFunction
from attrwidgets.core.sequence import encode_prompt
from attrwidgets.core.token.methods.integrated_gradients import integrate_path
from attrwidgets.core.token.methods.layer_ig import LayerTargetFunction, layer_baseline
from attrwidgets.core.tokens import Token
from attrwidgets.errors import AttrWidgetsError, checked_keywords, renamed_keywords

REMASKING = ("low_confidence", "random")
BASELINES = ("mask_prompt", "mask", "zero")


def mask_id_of(handle, mask_token_id=None) -> int:
    for candidate in (mask_token_id, getattr(handle.tokenizer, "mask_token_id", None),
                      getattr(handle.model.config, "mask_token_id", None)):
        if candidate is not None:
            return int(candidate)
    raise AttrWidgetsError(
        f"{handle.model_id!r} has no mask token (neither its tokenizer nor its config names one): pass "
        "mask_token_id=<the id the model was trained to denoise>, e.g. aw.dlig(..., mask_token_id=126336) for LLaDA."
    )


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise AttrWidgetsError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


# Old option names (one keyword means one thing across families: `n_steps` is the IG path's points).
RENAMED_OPTIONS = {"steps": "denoising_steps"}


def schedule(n_masked: int, steps: int) -> list[int]:
    """How many tokens each step unmasks: an even split, the remainder to the first steps (LLaDA's)."""
    base, extra = divmod(n_masked, steps)
    return [base + (1 if s < extra else 0) for s in range(steps)]


def _check_sizes(gen_length, steps, block_length) -> tuple[int, int, int]:
    gen_length, steps = _positive("gen_length", gen_length), _positive("denoising_steps", steps)
    if steps > gen_length:
        raise AttrWidgetsError(f"denoising_steps ({steps}) > gen_length ({gen_length}): a step must unmask at least "
                               "one token.")
    block = gen_length if block_length is None else _positive("block_length", block_length)
    if gen_length % block:
        raise AttrWidgetsError(f"block_length ({block}) must divide gen_length ({gen_length}).")
    n_blocks = gen_length // block
    if steps % n_blocks:
        raise AttrWidgetsError(f"denoising_steps ({steps}) must be a multiple of the number of blocks ({n_blocks}).")
    return gen_length, steps, block


@torch.no_grad()
def _predict(handle, ids: torch.Tensor) -> torch.Tensor:
    return handle.model(input_ids=ids.unsqueeze(0).to(handle.device)).logits[0].float()


def _choose(logits, x, mask_id, block, k, remasking, temperature, generator):
    """-> (positions, tokens) the step unmasks: k masked positions of the block."""
    # The mask token is never a prediction: "unmasking" a position to it would leave it masked, and a later step
    # would unmask it again (seen with temperature 1 on a random model). Confidence stays the model's own softmax.
    candidates = logits.clone()
    candidates[..., mask_id] = -np.inf
    if temperature > 0:  # Gumbel-max sampling at this temperature
        u = torch.rand(logits.shape, generator=generator).to(logits.device).clamp_(1e-10, 1 - 1e-10)
        predicted = (candidates / temperature - torch.log(-torch.log(u))).argmax(-1)
    else:
        predicted = candidates.argmax(-1)
    if remasking == "low_confidence":
        confidence = torch.softmax(logits, -1).gather(-1, predicted.unsqueeze(-1)).squeeze(-1)
    else:
        confidence = torch.rand(x.shape, generator=generator).to(logits.device)
    eligible = torch.zeros_like(x, dtype=torch.bool)
    eligible[block[0]:block[1]] = x[block[0]:block[1]] == mask_id
    confidence = torch.where(eligible.to(logits.device), confidence, torch.tensor(-np.inf, device=logits.device))
    positions = torch.topk(confidence, k).indices.sort().values.cpu()
    return positions, predicted.cpu()[positions]


@renamed_keywords(**RENAMED_OPTIONS)
@checked_keywords
def dlig(model, prompt_or_messages, *, layer=None, gen_length: int = 32, denoising_steps: int = 16, block_length=None,
         remasking: str = "low_confidence", temperature: float = 0.0, n_steps: int = 32, baseline="mask_prompt",
         quadrature: str = "gauss_legendre", objective: str = "logit", per_dim: bool = False, mask_token_id=None,
         seed: int = 0, progress: bool = True, cancel: threading.Event | None = None) -> DiffusionAttribution:
    """Sample from a masked-diffusion LM in `denoising_steps` steps and attribute every unmasked token at `layer`
    at its step (layer IG with `n_steps` path points). `steps=` is the old name of denoising_steps."""
    from attrwidgets.models import as_handle

    handle = as_handle(model)
    gen_length, steps, block = _check_sizes(gen_length, denoising_steps, block_length)
    if remasking not in REMASKING:
        raise AttrWidgetsError(f"Unknown remasking {remasking!r}: use one of {', '.join(REMASKING)}.")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise AttrWidgetsError(f"temperature must be >= 0 (0 = greedy); got {temperature!r}.")
    if isinstance(baseline, str) and baseline not in BASELINES:
        raise AttrWidgetsError(f"Unknown baseline {baseline!r}: use one of {', '.join(BASELINES)}, or a tensor.")
    mask_id = mask_id_of(handle, mask_token_id)
    spec = resolve_layer(handle, layer)
    prompt_ids, _, text = encode_prompt(handle.tokenizer, prompt_or_messages)
    n_prompt, total = len(prompt_ids), len(prompt_ids) + gen_length
    if total > handle.max_context:
        raise AttrWidgetsError(f"The prompt has {n_prompt} tokens and gen_length is {gen_length}: {total} is beyond "
                               f"the model's context of {handle.max_context}. Shorten the prompt or gen_length.")
    refuse_if_too_big(handle, "dlig", n_prompt, gen_length, {"layer": layer, "denoising_steps": steps, "n_steps": n_steps})
    options = {"n_steps": n_steps, "quadrature": quadrature, "objective": objective, "per_dim": per_dim,
               "aggregate": "l2", "batch_size": None, "tol": 0.005}
    x = torch.tensor(prompt_ids + [mask_id] * gen_length)
    generator = torch.Generator().manual_seed(int(seed))
    states, rows, results = [], [], []
    bar = _bar(steps, progress)
    try:
        for b in range(gen_length // block):
            span = (n_prompt + b * block, n_prompt + (b + 1) * block)
            per_block = steps // (gen_length // block)
            for k in schedule(block, per_block):
                if cancel is not None and cancel.is_set():
                    raise ComputationCancelled("Computation cancelled: a newer request replaced it.")
                step = len(states)
                states.append(x.clone())
                positions, tokens = _choose(_predict(handle, x), x, mask_id, span, k, remasking, temperature, generator)
                results.append(_explain_step(handle, spec, x, positions, tokens, n_prompt, mask_id, baseline,
                                             options, cancel))
                rows += [(step, int(p), int(t)) for p, t in zip(positions, tokens)]
                x[positions] = tokens
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    states.append(x.clone())
    return _assemble(handle, spec, text, x, n_prompt, mask_id, states, rows, results, options, baseline,
                     {"gen_length": gen_length, "denoising_steps": steps, "block_length": block, "remasking": remasking,
                          "temperature": float(temperature), "seed": int(seed)})


def _explain_step(handle, spec, x, positions, tokens, n_prompt, mask_id, baseline, options, cancel):
    fn = TargetFunction(handle, x, positions.tolist(), tokens.tolist(), objective=options["objective"],
                        cancel=cancel, n_prompt=n_prompt, causal=False)
    lfn = LayerTargetFunction(fn, spec)
    h = lfn.embeds().float()
    name = {"mask_prompt": "prompt_pad", "mask": "pad"}.get(baseline, baseline) if isinstance(baseline, str) else baseline
    return integrate_path(lfn, h, layer_baseline(lfn, name, h, replace_id=mask_id).float(), options)


def _assemble(handle, spec, text, x, n_prompt, mask_id, states, rows, results, options, baseline, sampler):
    from attrwidgets.core.sequence import clean_texts

    ids = x.tolist()
    tokenizer = handle.tokenizer
    special = set(tokenizer.all_special_ids)
    tokens = [Token(int(i), str(p), c, "prompt" if k < n_prompt else "generated", int(i) in special)
              for k, (i, p, c) in enumerate(zip(ids, tokenizer.convert_ids_to_tokens(ids), clean_texts(tokenizer, ids)))]
    cat = lambda name: np.concatenate([getattr(r, name) for r in results]) if results else np.zeros((0, len(ids)))
    per_dim = np.concatenate([r.per_dim for r in results]) if options["per_dim"] and results else None
    mask_text = tokenizer.convert_ids_to_tokens([mask_id])[0] if mask_id < len(tokenizer) else "[MASK]"
    return DiffusionAttribution(
        tokens=tokens, n_prompt=n_prompt, mask_token_id=mask_id, states=torch.stack(states).numpy(),
        row_step=np.array([r[0] for r in rows], np.int64), row_position=np.array([r[1] for r in rows], np.int64),
        row_token=np.array([r[2] for r in rows], np.int64), scores=cat("scores"), signed_scores=cat("signed_scores"),
        completeness_error=cat("completeness_error"), layer=spec.label,
        options={**{k: v for k, v in options.items() if k != "batch_size"}, **sampler,
                 "baseline": baseline if isinstance(baseline, str) else "tensor"},
        model_id=handle.model_id, prompt=text, mask_text=mask_text or "[MASK]", per_dim=per_dim,
        target_value=np.concatenate([r.info["f_input"] for r in results]).astype(np.float32) if results else None,
        baseline_value=np.concatenate([r.info["f_baseline"] for r in results]).astype(np.float32) if results else None,
    )


def _bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="DLIG", unit="step", leave=False)
