"""aw.depass(): an exact decomposed forward pass seeded at tokens, heads, a module, neurons or a subspace.

Each level builds a component stack at a boundary (seeds below), then core/depass/propagate.py carries it
to the end. Component order is part of the API:
  token     positions 0..T-1 of the state entering `start_layer`, then "bias"
  head      [the residual stream entering `layer`, head 0 .. head H-1 of that layer, "bias"]
  module    [the stream before the module, the module's output, "bias"]
  neuron    [the rest of the stream after the MLP of `layer`, each requested neuron's output, "bias"]
  subspace  the user's components at the input of `layer` (or one projection per basis, then the
            remainder), then "bias"
Every component is built from its own terms, never as "real minus the others"; completeness_error
measures how far the sum is from the real state.
"""

from __future__ import annotations

import threading

import torch

from attrwidgets.core.depass.propagate import propagate, relative_error
from attrwidgets.core.depass.result import Decomposition
from attrwidgets.core.depass.rules import split_rule
from attrwidgets.core.estimate import refuse_if_too_big
from attrwidgets.core.frozen import FrozenForward
from attrwidgets.core.frozen_ops import head_outputs
from attrwidgets.core.sequence import prepare_sequence
from attrwidgets.errors import AttrWidgetsError, checked_keywords

LEVELS = ("token", "module", "head", "neuron", "subspace")
MODULES = ("attn", "mlp")
SUBSPACE_TOLERANCE = 1e-4


def check_index(name: str, value, size: int, *, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -size <= value < size:
        raise AttrWidgetsError(f"{name}={value!r} is out of range: this model has {size} ({name} 0..{size - 1}){hint}.")
    return value % size


class Seed:
    """A component stack at a boundary, in propagation order: the bias component FIRST, then the others
    by the first position where they can be non-zero (core/frozen_ops.py). `labels` are in API order."""

    def __init__(self, parts: list[torch.Tensor], labels: list[str], layer: int, where: str, first=None):
        bias = torch.zeros_like(parts[0]) if len(parts[0].shape) == 2 else torch.zeros_like(parts[0][0])
        stack = [p.unsqueeze(0) if p.ndim == 2 else p for p in parts]
        self.X = torch.cat([bias.unsqueeze(0), *stack]).contiguous()
        zero = torch.zeros(1, dtype=torch.long, device=self.X.device)
        self.first = torch.cat([zero, first]) if first is not None else zero.expand(self.X.shape[0]).clone()
        self.labels, self.layer, self.where = labels + ["bias"], layer, where

    def entering(self) -> torch.Tensor | None:
        """The stack as it entered the seed's block, for a model whose MLP reads that (GPT-NeoX's parallel
        attention and MLP): at "mid" the first component after the bias is the block's input (the stream,
        or what came before the module), every other one came out of the attention."""
        if self.where != "mid":
            return None
        entering = torch.zeros_like(self.X)
        entering[1] = self.X[1]
        return entering

    def public(self, X: torch.Tensor | None = None) -> torch.Tensor:
        """A stack in propagation order -> API order (the bias component last)."""
        X = self.X if X is None else X
        return torch.cat([X[1:], X[:1]])


def token_seed(frozen: FrozenForward, start_layer: int) -> Seed:
    h = frozen.blocks[start_layer].x_in
    T, D = h.shape
    X = torch.zeros(T, T, D, dtype=h.dtype, device=h.device)
    idx = torch.arange(T, device=h.device)
    X[idx, idx] = h  # GPT-2: token k's component holds its position embedding too
    return Seed([X], [f"token {k}" for k in range(T)], start_layer, "input", first=idx)


def head_seed(frozen: FrozenForward, layer: int) -> Seed:
    h = frozen.blocks[layer].x_in
    per_head, out_bias = head_outputs(frozen, layer, torch.stack([torch.zeros_like(h), h]))
    seed = Seed([h, per_head[1].permute(1, 0, 2)], ["stream"] + [f"L{layer}.H{k}" for k in range(per_head.shape[2])],
                layer, "mid")
    seed.X[0] = per_head[0].sum(1)  # the value bias through every head's attention...
    if out_bias is not None:
        seed.X[0] += out_bias  # ...and the output projection's bias
    return seed


def module_seed(frozen: FrozenForward, layer: int, module: str) -> Seed:
    rec = frozen.blocks[layer]
    if module == "attn":
        parts, where = [rec.x_in, rec.attn_out], "mid"
    else:
        parts, where = [rec.mid, rec.mlp_out], "output"
    return Seed(parts, [f"before L{layer}.{module}", f"L{layer}.{module}"], layer, where)


def neuron_seed(frozen: FrozenForward, layer: int, neurons) -> Seed:
    rec = frozen.blocks[layer]
    out_map = frozen.mlp_out_map(layer)
    n_neurons = out_map.weight.shape[1]
    if neurons is None or isinstance(neurons, (str, bytes)) or not hasattr(neurons, "__iter__"):
        raise AttrWidgetsError("level='neuron' needs neurons=[i, ...]: indices of MLP neurons of `layer`.")
    chosen = [check_index("neuron", n, n_neurons) for n in neurons]
    if not chosen or len(set(chosen)) != len(chosen):
        raise AttrWidgetsError(f"neurons must be a non-empty list of distinct indices, got {list(neurons)!r}.")
    idx = torch.tensor(chosen, device=rec.values.device)
    w = out_map.weight[:, idx]  # (D, N)
    picked = rec.values[:, idx].t().unsqueeze(-1) * w.t().unsqueeze(1)  # (N, T, D)
    keep = torch.ones(n_neurons, dtype=rec.values.dtype, device=idx.device)
    keep[idx] = 0
    others = (rec.values * keep) @ out_map.weight.t()  # every other neuron's output
    if out_map.bias is not None:
        others = others + out_map.bias
    if rec.post_mlp is not None:  # through the frozen post-norm, a diagonal map per position
        picked, others = picked * rec.post_mlp, others * rec.post_mlp
    rest = rec.mid + others  # the stream after the MLP, without the chosen neurons
    return Seed([rest, picked], [f"rest after L{layer}.mlp"] + [f"L{layer}.N{n}" for n in chosen], layer, "output")


def subspace_seed(frozen: FrozenForward, layer: int, components) -> Seed:
    h = frozen.blocks[layer].x_in
    if components is None:
        raise AttrWidgetsError(
            "level='subspace' needs components=: an (M, T, D) tensor summing to the state entering `layer`, "
            "or a list of (D, k) bases (see attrwidgets.residual_state)."
        )
    if isinstance(components, (list, tuple)):
        parts = []
        for i, basis in enumerate(components):
            B = torch.as_tensor(basis, dtype=h.dtype, device=h.device)
            if B.ndim == 1:
                B = B.unsqueeze(1)
            if B.ndim != 2 or B.shape[0] != h.shape[1]:
                raise AttrWidgetsError(f"basis {i} must be (D, k) with D = {h.shape[1]}, got {tuple(B.shape)}.")
            parts.append(h @ B @ torch.linalg.pinv(B))  # orthogonal projection onto span(B)
        parts.append(h - sum(parts))  # the remainder is a component of its own
        return Seed(parts, [f"subspace {i}" for i in range(len(components))] + ["remainder"], layer, "input")
    X = torch.as_tensor(components, dtype=h.dtype).to(h.device)
    if X.ndim != 3 or X.shape[1:] != h.shape:
        raise AttrWidgetsError(f"components must be (M, T, D) = (M, {h.shape[0]}, {h.shape[1]}), got {tuple(X.shape)}.")
    err = relative_error(X.sum(0), h)
    if err > SUBSPACE_TOLERANCE:
        raise AttrWidgetsError(
            f"The components do not sum to the state entering layer {layer}: relative error {err:.2e} "
            f"(allowed {SUBSPACE_TOLERANCE:.0e}). Build them from attrwidgets.residual_state(model, prompt, "
            f"layer={layer}), e.g. a projection and the remainder."
        )
    return Seed([X], [f"component {i}" for i in range(X.shape[0])], layer, "input")


def build_seed(frozen: FrozenForward, level: str, *, layer, module, neurons, components, start_layer) -> Seed:
    L = frozen.n_layers
    if level not in LEVELS:
        raise AttrWidgetsError(f"Unknown level {level!r}: use one of {', '.join(LEVELS)}.")
    for name, value, owner in (("neurons", neurons, "neuron"), ("components", components, "subspace")):
        if value is not None and level != owner:
            raise AttrWidgetsError(f"{name}= belongs to level={owner!r}; level={level!r} does not use it.")
    if level == "token":
        if layer is not None and start_layer not in (0, layer):
            raise AttrWidgetsError(f"level='token' got layer={layer!r} and start_layer={start_layer!r}: give one.")
        # layer= reads naturally as "decompose from that layer": take it as start_layer
        return token_seed(frozen, check_index("start_layer", start_layer if layer is None else layer, L))
    if layer is None:
        raise AttrWidgetsError(f"level={level!r} needs layer=<0..{L - 1}>: the layer it is seeded at.")
    layer = check_index("layer", layer, L)
    if level == "head":
        return head_seed(frozen, layer)
    if level == "module":
        if module not in MODULES:
            raise AttrWidgetsError(f"Unknown module {module!r}: use 'attn' or 'mlp'.")
        return module_seed(frozen, layer, module)
    if level == "neuron":
        return neuron_seed(frozen, layer, neurons)
    return subspace_seed(frozen, layer, components)


def decompose(frozen: FrozenForward, seed: Seed, *, end_layer, mlp_rule: str, temperature: float,
              budget=None, progress=False, cancel: threading.Event | None = None):
    """-> (states (M, T, D) torch in API order, completeness error) for a seed."""
    L = frozen.n_layers
    end = L if end_layer is None else end_layer
    first_end = seed.layer + (0 if seed.where == "input" else 1)
    if isinstance(end, bool) or not isinstance(end, int) or not max(first_end, 1) <= end <= L:
        raise AttrWidgetsError(
            f"end_layer={end_layer!r} is out of range: it counts the blocks run, from {max(first_end, 1)} to {L} "
            f"(None = all {L})."
        )
    split = split_rule(mlp_rule, temperature)
    out = propagate(frozen, seed.X.clone(), seed.first, start_layer=seed.layer, where=seed.where, end_layer=end,
                    split=split, budget=budget, progress=progress, cancel=cancel, entering=seed.entering())
    real = frozen.final_out if end == L else frozen.block_output(end - 1)
    return seed.public(out), relative_error(out.sum(0), real)


@checked_keywords
def depass(handle, prompt_or_messages, *, level: str = "token", layer=None, module: str = "attn", neurons=None,
           components=None, start_layer: int = 0, end_layer=None, mlp_rule: str = "softmax",
           temperature: float = 0.1, max_new_tokens: int = 0, target: str | None = None, chunk_budget=None,
           progress: bool = True, cancel: threading.Event | None = None) -> Decomposition:
    """Decompose the model's state on a prompt into additive components (DePass, docs/methods/depass.md).

    prompt_or_messages: a string (tokenized with the tokenizer's default special tokens) or chat messages
    (the tokenizer's chat template). max_new_tokens > 0 generates greedily first; `target` forces a
    continuation. mlp_rule: softmax (default, `temperature`), max, linear, relu, taylor; every rule keeps the
    sum exact. chunk_budget: bytes per chunk of work (default: from free memory).
    """
    if level not in LEVELS:  # fail before the forward pass
        raise AttrWidgetsError(f"Unknown level {level!r}: use one of {', '.join(LEVELS)}.")
    split_rule(mlp_rule, temperature)
    sequence = prepare_sequence(handle, prompt_or_messages, max_new_tokens=max_new_tokens, target=target,
                                min_new_tokens=0)
    refuse_if_too_big(handle, "depass", sequence.n_prompt, len(sequence.tokens) - sequence.n_prompt,
                      {"level": level, "layer": layer, "start_layer": start_layer, "end_layer": end_layer,
                       "neurons": neurons, "components": components, "chunk_budget": chunk_budget}, generates=False)
    frozen = FrozenForward(handle, sequence.input_ids)
    seed = build_seed(frozen, level, layer=layer, module=module, neurons=neurons, components=components,
                      start_layer=start_layer)
    states, error = decompose(frozen, seed, end_layer=end_layer, mlp_rule=mlp_rule, temperature=temperature,
                              budget=chunk_budget, progress=progress, cancel=cancel)
    end = frozen.n_layers if end_layer is None else end_layer
    token_level = level == "token"
    options = {"layer": None if token_level else seed.layer, "module": module if level == "module" else None,
               "neurons": [int(n) for n in neurons] if level == "neuron" else None,
               "start_layer": seed.layer if token_level else None,
               "end_layer": end, "mlp_rule": mlp_rule, "temperature": float(temperature),
               "max_new_tokens": max_new_tokens, "final_norm": end == frozen.n_layers}
    unembedding = None
    if end == frozen.n_layers:
        head = handle.adapter.lm_head(handle.model)
        unembedding = (head.weight, getattr(head, "bias", None),
                       getattr(handle.model.config, "final_logit_softcapping", None))
    return Decomposition(
        tokens=sequence.tokens, components=seed.labels, states=states.permute(1, 0, 2).float().cpu().numpy(),
        completeness_error=error, level=level, options=options, model_id=handle.model_id,
        prompt=sequence.prompt_text, unembedding=unembedding, tokenizer=handle.tokenizer,
    )


def residual_state(handle, prompt_or_messages, *, layer: int, max_new_tokens: int = 0, target=None):
    """(T, D) numpy: the residual stream entering block `layer`, what subspace components must sum to."""
    sequence = prepare_sequence(handle, prompt_or_messages, max_new_tokens=max_new_tokens, target=target,
                                min_new_tokens=0)
    frozen = FrozenForward(handle, sequence.input_ids)
    return frozen.blocks[check_index("layer", layer, frozen.n_layers)].x_in.cpu().numpy()
