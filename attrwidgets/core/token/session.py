"""AttributionSession: generate once, then compute any method for any subset of targets.

attribute() is a session computing every row; a live widget keeps the session and asks for rows as the
user selects them (one row of IG costs about a whole IG run divided by the number of targets).
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from attrwidgets.core.estimate import Estimate, as_estimate, cost_of, refuse_if_too_big
from attrwidgets.core.forward import TargetFunction
from attrwidgets.core.sequence import check_row, contrast_token_id, encode_prompt, prepare_sequence
from attrwidgets.core.token.catalog import get_method, resolve_options
from attrwidgets.core.token.result import Attribution
from attrwidgets.errors import AttrWidgetsError, NonFiniteGradientError


class AttributionSession:
    def __init__(self, handle, prompt_or_messages, *, max_new_tokens: int = 8, target: str | None = None,
                 contrast=None):
        if not hasattr(handle, "adapter") or not hasattr(handle, "tokenizer"):
            raise AttrWidgetsError(f"model must be a ModelHandle from aw.load_model(...); got {type(handle).__name__} "
                                   f"{handle!r:.60}. Load it first: model = aw.load_model('name or folder').")
        self.handle = handle
        self._check_causal()
        self.sequence = prepare_sequence(handle, prompt_or_messages, max_new_tokens=max_new_tokens, target=target)
        self.contrast_id = contrast_token_id(handle.tokenizer, contrast)
        self.contrast = contrast
        self.generation = {"max_new_tokens": max_new_tokens, "forced_target": target, "greedy": target is None}
        self.target_prob, self.target_entropy = self._next_token_stats()

    @property
    def tokens(self):
        return self.sequence.tokens

    @property
    def target_positions(self) -> list[int]:
        return self.sequence.target_positions

    @torch.no_grad()
    def _next_token_stats(self) -> tuple[np.ndarray, np.ndarray]:
        ids = self.sequence.input_ids.to(self.handle.device).unsqueeze(0)
        logits = self.handle.model(input_ids=ids, use_cache=False).logits[0].float()
        pred = torch.tensor([p - 1 for p in self.target_positions], device=logits.device)
        logp = torch.log_softmax(logits[pred], dim=-1)
        chosen = logp.gather(-1, torch.tensor(self.sequence.target_ids, device=logits.device).unsqueeze(-1))
        entropy = -(logp.exp() * logp).sum(-1)
        return chosen.squeeze(-1).exp().cpu().numpy(), entropy.cpu().numpy()

    def _check_causal(self) -> None:
        if not self.handle.adapter.causal or self.handle.adapter.lm_head(self.handle.model) is None:
            raise AttrWidgetsError(
                f"Token attribution during generation needs a causal LM with an LM head; "
                f"{self.handle.adapter.name!r} is an encoder: use aw.lig on it instead."
            )

    def is_cheap(self, method: str) -> bool:
        return get_method(method).cheap

    def compute(self, method: str, rows=None, *, progress: bool = True, cancel: threading.Event | None = None,
                on_partial=None, **options) -> Attribution:
        """Attribution with the requested rows filled (all when rows is None); other rows are NaN.
        on_partial(row, scores (n_positions,), completeness_error, evaluations): called with each intermediate
        answer of a method that refines (adaptive integrated gradients), before the final one is returned."""
        self._check_causal()
        spec = get_method(method)
        resolved = resolve_options(spec, options)
        n_targets, n_positions = len(self.target_positions), len(self.tokens)
        rows = list(range(n_targets)) if rows is None else sorted({self._check_row(r) for r in rows})
        refuse_if_too_big(self.handle, "attribute", self.sequence.n_prompt, n_targets,
                          {"method": spec.name, **resolved}, generates=False, rows=len(rows))
        objective = resolved.get("objective", "log_prob")
        fn = TargetFunction(
            self.handle, self.sequence.input_ids, [self.target_positions[r] for r in rows],
            [self.sequence.target_ids[r] for r in rows], contrast_id=self.contrast_id, objective=objective,
            cancel=cancel, n_prompt=self.sequence.n_prompt,
        )
        if on_partial is not None:
            fn.on_partial = _widened_partial(on_partial, rows, n_positions)
        bar = _progress_bar(method, progress and not spec.cheap)
        try:
            out = spec.func(fn, resolved, bar)
        finally:
            if bar is not None:
                bar.close()
        return self._to_result(spec.name, resolved, rows, out, n_targets, n_positions)

    def estimate(self, method: str, rows=None, **options) -> Estimate:
        """What compute(method, rows, **options) will take on this device (core/estimate.py)."""
        spec = get_method(method)
        resolved = resolve_options(spec, options)
        n_targets = len(self.target_positions)
        n_rows = n_targets if rows is None else len(list(rows))
        cost = cost_of(self.handle, "attribute", self.sequence.n_prompt, n_targets, {"method": spec.name, **resolved},
                       generates=False, rows=n_rows)
        return as_estimate(self.handle, cost)

    def _check_row(self, row) -> int:
        return check_row(row, len(self.target_positions))

    def _to_result(self, method, options, rows, out, n_targets, n_positions) -> Attribution:
        def widen(block: np.ndarray, fill=np.nan) -> np.ndarray:
            """(n_rows, t, ...) over the truncated length -> (n_targets, n_positions, ...)."""
            full = np.full((n_targets, n_positions) + block.shape[2:], fill, dtype=np.float32)
            full[rows] = 0.0
            full[rows, : block.shape[1]] = block
            return full

        def per_row(values):
            if values is None:
                return None
            full = np.full(n_targets, np.nan, dtype=np.float32)
            full[rows] = values
            return full

        if not np.isfinite(out.scores).all():
            raise NonFiniteGradientError(f"{method} produced NaN/inf scores: nothing is drawn from them.")
        attention = None
        if out.attention is not None:
            attention = np.full((n_targets,) + out.attention.shape[1:3] + (n_positions,), np.nan, np.float32)
            attention[rows] = 0.0
            attention[rows, :, :, : out.attention.shape[3]] = out.attention
        stored = {k: v for k, v in options.items() if _jsonable(v)}
        stored.update(out.info)
        if self.contrast is not None:
            stored["contrast"] = self.contrast if isinstance(self.contrast, str) else int(self.contrast)
            stored["objective"] = "contrast_logit"
        stored["generation"] = self.generation
        return Attribution(
            tokens=self.tokens, target_positions=self.target_positions, scores=widen(out.scores), method=method,
            options=stored, model_id=self.handle.model_id, prompt=self.sequence.prompt_text,
            target_prob=self.target_prob, target_entropy=self.target_entropy,
            completeness_error=per_row(out.completeness_error),
            per_dim=widen(out.per_dim) if out.per_dim is not None else None, attention=attention,
            signed_scores=widen(out.signed_scores) if out.signed_scores is not None else None,
        )


def _jsonable(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _progress_bar(method: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(desc=method, unit="step", leave=False)


def attribute(handle, prompt_or_messages, *, method: str, max_new_tokens: int = 8, target: str | None = None,
              contrast=None, progress: bool = True, **method_options) -> Attribution:
    """Generate (greedy) or force `target`, then attribute every generated token to every earlier position.

    prompt_or_messages: a string, or chat messages rendered with the tokenizer's own chat template.
    Rows of the result are the generated tokens (targets), columns every position (sources).
    """
    spec = get_method(method)  # fail fast on an unknown method, before generating
    if hasattr(handle, "adapter") and hasattr(handle, "tokenizer"):  # else the session says what is wrong
        _refuse_before_generating(handle, prompt_or_messages, spec.name, max_new_tokens, target, method_options)
    session = AttributionSession(handle, prompt_or_messages, max_new_tokens=max_new_tokens, target=target,
                                 contrast=contrast)
    return session.compute(method, progress=progress, **method_options)


def _refuse_before_generating(handle, prompt, method: str, max_new_tokens, target, options: dict) -> None:
    """Work that would not fit in memory is refused before the continuation is generated (at 2,048 tokens on a
    CPU the generation alone takes half a minute)."""
    n_prompt = len(encode_prompt(handle.tokenizer, prompt)[0])
    if isinstance(target, str):
        n_new = len(handle.tokenizer(target, add_special_tokens=False)["input_ids"])
    elif isinstance(max_new_tokens, int) and not isinstance(max_new_tokens, bool) and max_new_tokens > 0:
        n_new = max_new_tokens
    else:
        return  # prepare_sequence says what is wrong with it
    refuse_if_too_big(handle, "attribute", n_prompt, n_new, {"method": method, **options})


def layer_ig(model, prompt_or_messages, *, layer=None, max_new_tokens: int = 8, target: str | None = None,
             contrast=None, progress: bool = True, **options) -> Attribution:
    """Layer IG of every generated token at `layer` (a role such as "block 10", "block 10 attn", "embeddings",
    or a module path; None = block 10, or the middle block of a smaller model; core/token/methods/layer_ig.py). Options:
    n_steps, baseline ("prompt_pad", "pad", "zero" or a tensor shaped like the layer's output), quadrature,
    objective, per_dim, aggregate. An Attribution: rows = generated tokens, columns = positions, so TokenMatrix,
    export and every format take it."""
    from attrwidgets.models import as_handle

    return attribute(as_handle(model), prompt_or_messages, method="layer_integrated_gradients",
                     max_new_tokens=max_new_tokens, target=target, contrast=contrast, progress=progress,
                     layer=layer, **options)


def _widened_partial(on_partial, rows: list[int], n_positions: int):
    """A method's intermediate answer for its j-th target (over the truncated length) -> on_partial(row, scores
    over every position, ...), zero after what the target can read, as in the final result."""

    def partial(j: int, scores: np.ndarray, error: float, evaluations: int) -> None:
        full = np.zeros(n_positions, np.float32)
        full[: len(scores)] = scores
        on_partial(rows[j], full, error, evaluations)

    return partial
