"""The differentiable target: embeddings -> one scalar per generated token, batched over paths.

Target i is the log-probability of token y_i given its prefix (objective="log_prob"), its logit
(objective="logit"), or logit(y_i) - logit(contrast) when a contrast token is given. One forward over the
whole sequence serves every target of a causal LM: target i reads the final hidden state at position
pos_i - 1 only, and causal attention keeps later positions out of it. The unembedding runs only at those
positions (the vocabulary projection at every position would cost ~20% of a small model's FLOPs).
"""

from __future__ import annotations

import contextlib
import copy
import threading

import torch

from attrwidgets.errors import AttrWidgetsError, NonFiniteGradientError

OBJECTIVES = ("log_prob", "logit")


class ComputationCancelled(AttrWidgetsError):
    """The caller asked to stop (a newer selection in a widget, or an interrupt)."""


class TargetFunction:
    def __init__(self, handle, input_ids: torch.Tensor, target_positions, target_ids, *,
                 contrast_id: int | None = None, objective: str = "log_prob",
                 cancel: threading.Event | None = None, n_prompt: int = 0, causal: bool = True):
        if objective not in OBJECTIVES:
            raise AttrWidgetsError(f"Unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}.")
        self.handle = handle
        self.model = handle.model
        self.adapter = handle.adapter
        self.device = handle.device
        self.dtype = self.adapter.embedding(self.model).weight.dtype
        if causal:  # target i is predicted at pos_i - 1; later positions cannot influence it: drop them
            self.length = max(target_positions)
            self.pred_positions = torch.tensor([p - 1 for p in target_positions], device=self.device)
        else:  # a bidirectional (masked-diffusion) model predicts a token at its own position, from all of them
            self.length = len(input_ids)
            # ...or, like Dream, at the position before it (adapters.py next_token_logits; position 0 predicts itself)
            shift = 1 if self.adapter.next_token_logits else 0
            self.pred_positions = torch.tensor([max(p - shift, 0) for p in target_positions], device=self.device)
        self.input_ids = input_ids[: self.length].to(self.device)
        self.target_ids = torch.tensor(list(target_ids), device=self.device)
        self.contrast_id = contrast_id
        self.objective = objective
        self.cancel = cancel
        self.n_targets = len(target_positions)
        self.n_prompt = n_prompt  # prompt positions come first (layer IG's "prompt_pad" baseline replaces them)
        self._vmap_ok = True

    def for_targets(self, indices) -> TargetFunction:
        """The same function (same sequence, same forward length, same state) with only these targets."""
        sub = copy.copy(self)
        index = torch.as_tensor(list(indices), dtype=torch.long, device=self.pred_positions.device)
        sub.pred_positions = self.pred_positions[index]
        sub.target_ids = self.target_ids[index.to(self.target_ids.device)]
        sub.n_targets = len(index)
        return sub

    def embeds(self) -> torch.Tensor:
        """(T, D) input embeddings of the (truncated) sequence; T = self.length."""
        with torch.no_grad():
            return self.adapter.embedding(self.model)(self.input_ids).detach()

    def token_embedding(self, token_id: int) -> torch.Tensor:
        # Through the module, not its weight row: Gemma's embedding module scales by sqrt(D).
        with torch.no_grad():
            ids = torch.tensor([token_id], device=self.device)
            return self.adapter.embedding(self.model)(ids)[0].detach()

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """x: (S, T, D) embeddings along S points of a path -> (S, n_targets) target values."""
        hidden = self.adapter.base(self.model)(inputs_embeds=x.to(self.dtype), use_cache=False).last_hidden_state
        return self.select(self.adapter.logits(self.model, hidden[:, self.pred_positions]))

    def select(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (S, n, V) at the predicting positions -> (S, n) target values (the objective)."""
        logits = logits.float()
        index = self.target_ids.view(1, -1, 1).expand(logits.shape[0], -1, 1)
        chosen = logits.gather(-1, index).squeeze(-1)
        if self.contrast_id is not None:
            return chosen - logits[..., self.contrast_id]
        if self.objective == "logit":
            return chosen
        return chosen - torch.logsumexp(logits, dim=-1)

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise ComputationCancelled("Computation cancelled: a newer request replaced it.")

    def values_and_grads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (S, T, D) -> values (S, n) and gradients (S, n, T, D) of each target w.r.t. x, float32.

        One forward for all targets. For a single point (saliency, input x gradient) one vmapped backward
        carries every target's seed at once: measured 1.75 s -> 1.00 s for 8 targets. For a chunk of path
        points (IG) one backward per target is faster: end to end, the vmapped backward took IG from 19.2 s to
        26.8 s and raised peak memory from 2.5 to 3.3 GiB (benchmarks/token/bench_token_attribution.py). Models with
        an op that has no vmap rule also use the per-target loop.
        """
        self.check_cancel()
        x = x.detach().to(self.dtype).requires_grad_(True)
        with torch.enable_grad(), frozen_parameters(self.model):
            vals = self.values(x)
            grads = self._batched_backward(vals, x) if self._vmap_ok and x.shape[0] == 1 else None
            if grads is None:
                grads = torch.stack([
                    torch.autograd.grad(vals[:, j].sum(), x, retain_graph=j < self.n_targets - 1)[0].float()
                    for j in range(self.n_targets)
                ], dim=1)
        if not torch.isfinite(grads).all():
            bad = (~torch.isfinite(grads)).flatten(2).any(-1).nonzero().tolist()
            raise NonFiniteGradientError(
                f"NaN/inf appeared in the gradients (at (path point, target) pairs {bad[:5]}). Nothing is "
                "drawn from them. For integrated gradients try baseline='pad' or a quadrature that does not "
                "evaluate alpha=0 (riemann_right, gauss_legendre, adaptive); in half precision, use float32."
            )
        return vals.detach().float(), grads

    def _batched_backward(self, vals: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        if self.n_targets == 1:
            return torch.autograd.grad(vals[:, 0].sum(), x)[0].float().unsqueeze(1)
        seeds = torch.eye(self.n_targets, device=vals.device, dtype=vals.dtype)
        seeds = seeds.unsqueeze(1).expand(self.n_targets, vals.shape[0], self.n_targets)
        try:
            (g,) = torch.autograd.grad(vals, x, seeds, retain_graph=True, is_grads_batched=True)
        except RuntimeError:  # an op without a batching rule: use the per-target loop from now on
            self._vmap_ok = False
            return None
        return g.float().transpose(0, 1)  # (n, S, T, D) -> (S, n, T, D)

    def values_at(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.values(x.to(self.dtype)).float()


_FREEZE_LOCK = threading.Lock()
_FROZEN: dict[int, tuple[int, list]] = {}  # id(model) -> (holders, parameters this freeze turned off)


@contextlib.contextmanager
def frozen_parameters(model: torch.nn.Module):
    """Parameters stop requiring grad for the duration: autograd then saves no activations for weight
    gradients we never use (less memory, faster backward). Restored afterwards, exactly as they were.
    load_model and the test models freeze their parameters once, so this only acts on a model whose handle was
    built elsewhere with trainable parameters.

    Counted per model: live views compute on worker threads, so two computations can overlap on one model;
    the first to enter turns the flags off and the last to leave restores them (a plain save/restore would let
    the first to leave switch them back on under the other one's feet)."""
    key = id(model)
    with _FREEZE_LOCK:
        holders, changed = _FROZEN.get(key, (0, []))
        if holders == 0:
            changed = [p for p in model.parameters() if p.requires_grad]
            for p in changed:
                p.requires_grad_(False)
        _FROZEN[key] = (holders + 1, changed)
    try:
        yield
    finally:
        with _FREEZE_LOCK:
            holders, changed = _FROZEN.pop(key)
            if holders > 1:
                _FROZEN[key] = (holders - 1, changed)
            else:
                for p in changed:
                    p.requires_grad_(True)


def step_batch_size(handle, length: int, n_targets: int, budget_bytes: int | None = None) -> int:
    """How many path points fit one forward+backward in a memory budget (rough activation estimate)."""
    cfg = handle.model.config
    d = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", 256)
    inter = getattr(cfg, "intermediate_size", None) or 4 * d
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", 8)
    layers = handle.adapter.n_layers(handle.model)
    vocab = getattr(cfg, "vocab_size", 32000)
    per_token_layer = 14 * d + 4 * inter + 3 * heads * length
    per_point = 4 * (length * layers * per_token_layer + 3 * n_targets * vocab + (n_targets + 2) * length * d)
    if budget_bytes is None:
        budget_bytes = 2 << 30
        if handle.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(handle.device)
            budget_bytes = int(free * 0.5)
    return int(max(1, min(256, budget_bytes // max(per_point, 1))))
