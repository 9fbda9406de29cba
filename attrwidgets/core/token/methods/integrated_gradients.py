"""Integrated gradients on input embeddings, batched over path points and shared by all targets.

IG_p,d = (e_p,d - e'_p,d) * integral_0^1 d target(e' + a (e - e')) / d e_p,d da, by quadrature.
Every result carries its completeness error |sum IG - (f(e) - f(e'))| / |f(e) - f(e')|, computed from two
extra forward passes, because on real models the straight path is far from smooth (see README).
"""

from __future__ import annotations

import numpy as np
import torch

from attrwidgets.core.chunks import run_in_chunks
from attrwidgets.core.forward import step_batch_size
from attrwidgets.core.integrate import adaptive_integral
from attrwidgets.core.quadrature import FIXED_RULES, QUADRATURES, fixed_rule
from attrwidgets.core.token.methods.gradients import reduce_dims
from attrwidgets.core.token.registry import MethodOutput, register
from attrwidgets.errors import AttrWidgetsError

BASELINES = ("zero", "pad")
DEFAULTS = {
    "n_steps": 128,
    "baseline": "pad",
    "quadrature": "adaptive",
    "objective": "log_prob",
    "aggregate": "sum",
    "per_dim": False,
    "batch_size": None,  # path points per forward; None = chosen from a memory budget
    "tol": 0.005,  # adaptive only: stop refining once the completeness error is below this
    "first_steps": None,  # adaptive only: gradient evaluations of the first pass (None: n_steps // 4)
}


def make_baseline(fn, baseline, x: torch.Tensor) -> torch.Tensor:
    if isinstance(baseline, (torch.Tensor, np.ndarray)):
        b = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
        if b.ndim == 1 and b.shape[0] == x.shape[1]:
            return b.expand_as(x).clone()
        if b.ndim == 2 and b.shape[1] == x.shape[1] and b.shape[0] >= x.shape[0]:
            return b[: x.shape[0]].clone()
        raise AttrWidgetsError(
            f"A baseline tensor must be (D,) or (n_positions, D) with D={x.shape[1]}; got {tuple(b.shape)}."
        )
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline == "pad":
        tok = fn.handle.tokenizer
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if pad_id is None:
            raise AttrWidgetsError("baseline='pad' needs a pad or eos token; this tokenizer has neither: use 'zero'.")
        return fn.token_embedding(pad_id).to(x.dtype).expand_as(x).clone()
    raise AttrWidgetsError(f"Unknown baseline {baseline!r}: use one of {', '.join(BASELINES)}, or a tensor.")


def check_n_steps(n_steps) -> int:
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps <= 0:
        raise AttrWidgetsError(f"n_steps must be a positive integer (e.g. 64); got {n_steps!r}.")
    return int(n_steps)


def check_batch_size(batch_size) -> int | None:
    """None (chosen from a memory budget) or a positive integer."""
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise AttrWidgetsError(f"batch_size must be a positive integer, or None to fit the memory; got {batch_size!r}.")
    return int(batch_size)


def check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating)) or not 0 <= tol < float("inf"):
        raise AttrWidgetsError(f"tol must be a number >= 0 (a relative completeness error, e.g. 0.005); got {tol!r}.")
    return float(tol)


class PathEvaluator:
    """Evaluates target values and gradients at points baseline + alpha * delta, in memory-sized chunks."""

    def __init__(self, fn, baseline, delta, batch_size: int, progress=None):
        self.fn, self.baseline, self.delta = fn, baseline, delta
        self.batch_size, self.progress = batch_size, progress
        self.evaluations = 0
        self.forward_only = 0

    def _points(self, alphas) -> torch.Tensor:
        """Path points baseline + alpha * delta, (k, T, D)."""
        alpha = torch.as_tensor(np.asarray(alphas), dtype=self.delta.dtype, device=self.delta.device)
        return self.baseline.unsqueeze(0) + alpha.view(-1, 1, 1) * self.delta.unsqueeze(0)

    def __call__(self, alphas) -> tuple[np.ndarray, torch.Tensor]:
        """alphas (k,) -> values (k, n) numpy and gradients (k, n, T, D) float32, in chunks that fit memory."""
        alphas, values, grads = np.asarray(alphas), [], []

        def run(start: int, stop: int) -> None:
            v, g = self.fn.values_and_grads(self._points(alphas[start:stop]))
            values.append(v.cpu().numpy())
            grads.append(g.cpu())
            self.evaluations += stop - start
            if self.progress is not None:
                self.progress.update(stop - start)

        self.batch_size = run_in_chunks(len(alphas), self.batch_size, run)
        return np.concatenate(values), torch.cat(grads)

    def values_only(self, alphas) -> np.ndarray:
        """Forward passes only (no graph): f at path points, (k, n)."""
        alphas, out = np.asarray(alphas), []

        def run(start: int, stop: int) -> None:
            out.append(self.fn.values_at(self._points(alphas[start:stop])).cpu().numpy())
            self.forward_only += stop - start

        self.batch_size = run_in_chunks(len(alphas), self.batch_size, run)
        return np.concatenate(out) if out else np.zeros((0, self.fn.n_targets))


def _fixed(evaluate: PathEvaluator, rule: str, n_steps: int) -> torch.Tensor:
    nodes, weights = fixed_rule(rule, n_steps)
    acc = None
    for start in range(0, n_steps, evaluate.batch_size):
        sl = slice(start, start + evaluate.batch_size)
        _, g = evaluate(nodes[sl])
        part = torch.einsum("k,kntd->ntd", torch.as_tensor(weights[sl], dtype=g.dtype), g)
        acc = part if acc is None else acc + part
    return acc


def check_first_steps(first_steps) -> int | None:
    if first_steps is None:
        return None
    if isinstance(first_steps, bool) or not isinstance(first_steps, (int, np.integer)) or first_steps <= 0:
        raise AttrWidgetsError(f"first_steps must be a positive integer (e.g. 8), or None for n_steps // 4; got "
                               f"{first_steps!r}.")
    return int(first_steps)


def _partial_sink(fn, j: int, delta: torch.Tensor, aggregate: str):
    """on_estimate for target j: its intermediate scores go to fn.on_partial (a live view shows them refine)."""
    if getattr(fn, "on_partial", None) is None:
        return None

    def sink(integral: torch.Tensor, errors: np.ndarray, evaluations: int) -> None:
        scores = reduce_dims(integral * delta.cpu().unsqueeze(0), aggregate)[0]
        fn.on_partial(j, np.asarray(scores, dtype=np.float32), float(errors[0]), int(evaluations))

    return sink


def _adaptive_per_target(fn, baseline, delta, n_steps, f0, f1, options, batch, progress):
    """The adaptive rule chooses its nodes for each target on its own path, so a row's scores never depend on
    which other rows were computed with it (a live view computes one row at a time) nor on the batch size
    (docs/methods/token.md, "Same inputs, same numbers"). Costs one forward per target and path point where a
    shared node set would share it, and stops each target as soon as it reaches tol.
    -> (integral (n, T, D), gradient evaluations, forward-only evaluations)."""
    if progress is not None:
        progress.reset(total=n_steps * fn.n_targets)
    parts, evaluations, forward_only = [], 0, 0
    for j in range(fn.n_targets):
        evaluate = PathEvaluator(fn.for_targets([j]), baseline, delta, batch, progress)
        parts.append(adaptive_integral(evaluate, n_steps, f0[j : j + 1], f1[j : j + 1], float(options["tol"]),
                                       first_steps=options.get("first_steps"),
                                       on_estimate=_partial_sink(fn, j, delta, options["aggregate"])))
        evaluations, forward_only = evaluations + evaluate.evaluations, forward_only + evaluate.forward_only
    return torch.cat(parts), evaluations, forward_only


@register(
    "integrated_gradients",
    defaults=DEFAULTS,
    cheap=False,
    summary="integrated gradients on input embeddings, with the completeness error of every target",
)
def integrated_gradients(fn, options, progress=None) -> MethodOutput:
    x = fn.embeds().float()
    return integrate_path(fn, x, make_baseline(fn, options["baseline"], x), options, progress)


def integrate_path(fn, x: torch.Tensor, baseline: torch.Tensor, options: dict, progress=None) -> MethodOutput:
    """IG of every target of `fn` along baseline -> x (T, D), the space fn.values reads (input embeddings for
    token IG; a layer's output for layer IG), with each target's completeness error."""
    n_steps = check_n_steps(options["n_steps"])
    options = {**options, "batch_size": check_batch_size(options["batch_size"]), "tol": check_tol(options["tol"]),
               "first_steps": check_first_steps(options.get("first_steps"))}
    rule = options["quadrature"]
    if rule not in QUADRATURES:
        raise AttrWidgetsError(f"Unknown quadrature {rule!r}: use one of {', '.join(QUADRATURES)}.")
    delta = x - baseline
    f1 = fn.values_at(x.unsqueeze(0))[0].cpu().numpy()
    f0 = fn.values_at(baseline.unsqueeze(0))[0].cpu().numpy()
    if rule in FIXED_RULES:  # the same nodes for every target: one forward serves them all
        batch = options["batch_size"] or step_batch_size(fn.handle, fn.length, fn.n_targets)
        if progress is not None:
            progress.reset(total=n_steps)
        evaluate = PathEvaluator(fn, baseline, delta, int(batch), progress)
        integral = _fixed(evaluate, rule, n_steps)
        evaluations, forward_only = evaluate.evaluations, evaluate.forward_only
    else:
        batch = options["batch_size"] or step_batch_size(fn.handle, fn.length, 1)
        integral, evaluations, forward_only = _adaptive_per_target(
            fn, baseline, delta, n_steps, f0, f1, options, int(batch), progress)
    per_dim = integral * delta.cpu().unsqueeze(0)  # (n, T, D)
    total = per_dim.sum(dim=(1, 2)).double().numpy()
    expected = (f1 - f0).astype(np.float64)
    error = np.abs(total - expected) / np.maximum(np.abs(expected), 1e-12)
    return MethodOutput(
        scores=reduce_dims(per_dim, options["aggregate"]),
        per_dim=per_dim.numpy() if options["per_dim"] else None,
        completeness_error=error.astype(np.float32),
        signed_scores=per_dim.sum(-1).numpy() if options["aggregate"] != "sum" else None,
        info={"evaluations": evaluations, "forward_only": forward_only + 2, "f_input": f1.tolist(),
              "f_baseline": f0.tolist(), "batch_size": int(batch)},
    )
