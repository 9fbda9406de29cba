"""Per-head contributions to one target logit: the numbers behind the HeadGrid.

For every layer l, DePass at head level (components [stream entering l, head 0..H-1, bias]) runs from l to
the end; each component's part of the final state, through the unembedding row of the target, is its
contribution to the target's logit. The sum over components is the real logit (minus an LM-head bias),
so every row of the grid is an exact split. One real forward (FrozenForward) serves every layer and, in a
HeadSession, every target row: positions after the explained one cannot matter (causal), so the frozen
records are cut to that length instead of re-running the model.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from attrwidgets.core.depass.decompose import decompose, head_seed
from attrwidgets.core.depass.head_split import HeadSplit, head_split_at
from attrwidgets.core.depass.result import HeadContributions, resolve_token_id
from attrwidgets.core.depass.rules import split_rule
from attrwidgets.core.estimate import refuse_if_too_big
from attrwidgets.core.frozen import FrozenForward
from attrwidgets.core.frozen_ops import apply_norm, head_values
from attrwidgets.core.sequence import check_row, prepare_sequence
from attrwidgets.errors import AttrWidgetsError, checked_keywords


def _direct_per_source(frozen: FrozenForward, layer: int, position: int, direction: torch.Tensor) -> torch.Tensor:
    """(H, T): head h's direct write at `position` through source k, read along `direction` (D,).

    The final norm is frozen, so the read-out is linear: LayerNorm's centring moves into the direction.
    Value and output biases are the bias component's, so they are left out here, as in the head split.
    """
    rec = frozen.blocks[layer]
    h = rec.x_in.unsqueeze(0)
    stack = torch.cat([torch.zeros_like(h), h])  # [bias, stream]: the value bias stays in the first
    v = head_values(frozen, layer, apply_norm(stack, frozen.norm_attn(layer), rec.scale_attn))[1]  # (T, KV, hd)
    H, hd = frozen.n_heads, frozen.head_dim
    v = v[:, torch.arange(H, device=v.device) // (H // v.shape[1])]  # (T, H, hd): query head h reads kv h // rep
    w = frozen.out_map(layer).weight.view(-1, H, hd)  # (D, H, hd)
    if rec.post_attn is not None:  # the frozen post-norm at the query scales every write there
        direction = direction * rec.post_attn[position]
    read = torch.einsum("khd,ehd,e->hk", v, w, direction)  # each source's written vector, read out
    return rec.attention[:, position, :] * read


def head_contributions_at(frozen: FrozenForward, position: int, target_id: int, *, mlp_rule: str = "softmax",
                          temperature: float = 0.1, tokens=None, budget=None, progress: bool = False,
                          cancel: threading.Event | None = None, model_id: str = "", prompt: str = "",
                          target_text: str = "", on_layer=None) -> HeadContributions:
    """on_layer(layer, contributions so far (L, H), NaN for layers not done), after each layer: a live view
    fills in as they finish. The last layer goes first: its DePass runs one block, the first layer's all of them."""
    split_rule(mlp_rule, temperature)
    final = frozen.final_norm()
    unembed = frozen.unembedding()
    # Gemma 2's final soft-cap is frozen as a scale of this logit, so the parts sum to the capped logit.
    capped = float(frozen.logit_scale(position)[target_id])
    row = unembed.weight[target_id] * capped
    # The frozen final norm at `position` is linear: x -> centre(x) * s * w (+ offset, the bias component's).
    direction = row * final.weight * frozen.final_scale[position]
    if final.kind == "layer":
        direction = direction - direction.mean()
    L, H, T = frozen.n_layers, frozen.n_heads, frozen.length
    contributions, per_source = torch.zeros(L, H), torch.zeros(L, H, T)
    stream, bias, worst = torch.zeros(L), torch.zeros(L), 0.0
    layers = range(L - 1, -1, -1)
    done = np.zeros(L, bool)
    if progress:
        from tqdm.auto import tqdm

        layers = tqdm(layers, desc="head contributions", unit="layer", leave=False)
    for layer in layers:  # decompose() checks `cancel` between half-layers
        states, error = decompose(frozen, head_seed(frozen, layer), end_layer=None, mlp_rule=mlp_rule,
                                  temperature=temperature, budget=budget, cancel=cancel)
        worst = max(worst, error)
        logit_parts = (states[:, position] @ row).cpu()  # (H + 2,)
        stream[layer], contributions[layer], bias[layer] = logit_parts[0], logit_parts[1:-1], logit_parts[-1]
        per_source[layer] = _direct_per_source(frozen, layer, position, direction).cpu()
        done[layer] = True
        if on_layer is not None:
            on_layer(layer, np.where(done[:, None], contributions.numpy(), np.nan).astype(np.float32))
    if unembed.bias is not None:
        bias += float(unembed.bias[target_id]) * capped
    attention = torch.stack([b.attention for b in frozen.blocks]).cpu()
    return HeadContributions(
        tokens=list(tokens) if tokens is not None else [], position=position, target_id=int(target_id),
        target_text=target_text, contributions=contributions.numpy(), per_source=per_source.numpy(),
        attention=attention.numpy(), stream=stream.numpy(), bias=bias.numpy(),
        logit=float(frozen.real_logits(position)[target_id]), completeness_error=worst,
        options={"mlp_rule": mlp_rule, "temperature": float(temperature)}, model_id=model_id, prompt=prompt,
    )


def _target_id(handle, frozen: FrozenForward, position: int, target) -> int:
    vocab = frozen.unembedding().weight.shape[0]
    if target is None:
        return int(frozen.real_logits(position).argmax())  # the token the model predicts there
    return resolve_token_id(handle.tokenizer, target, vocab)


@checked_keywords
def head_contributions(handle, prompt, *, target=None, position: int = -1, mlp_rule: str = "softmax",
                       temperature: float = 0.1, chunk_budget=None, progress: bool = True) -> HeadContributions:
    """Contribution of every (layer, head) to the logit of `target` predicted at `position`.

    target: a token string (one token), a token id, or None for the token the model predicts there.
    position: index into the prompt's tokens (negative counts from the end; default the last).
    """
    split_rule(mlp_rule, temperature)
    sequence = prepare_sequence(handle, prompt, max_new_tokens=0, min_new_tokens=0)
    T = len(sequence.tokens)
    if isinstance(position, bool) or not isinstance(position, int) or not -T <= position < T:
        raise AttrWidgetsError(f"position={position!r} is out of range: the prompt has {T} tokens (0..{T - 1}).")
    position %= T
    refuse_if_too_big(handle, "head_contributions", position + 1, 0, {"chunk_budget": chunk_budget})
    frozen = FrozenForward(handle, sequence.input_ids[: position + 1])  # later positions cannot matter
    target_id = _target_id(handle, frozen, position, target)
    return head_contributions_at(
        frozen, position, target_id, mlp_rule=mlp_rule, temperature=temperature, tokens=sequence.tokens[: position + 1],
        budget=chunk_budget, progress=progress, model_id=handle.model_id, prompt=sequence.prompt_text,
        target_text=handle.tokenizer.decode([target_id]),
    )


class HeadSession:
    """One prompt (and its greedy continuation), one real forward; head contributions per target row.

    Rows are the generated tokens, as in AttributionSession, so a HeadGrid links to a TokenMatrix on the
    same prompt; with max_new_tokens=0 the rows are every position 1..T-1 of the prompt. Row i explains
    the token at target_positions[i] through its logit at query_positions[i] = target_positions[i] - 1.
    """

    def __init__(self, handle, prompt_or_messages, *, max_new_tokens: int = 8, target: str | None = None,
                 mlp_rule: str = "softmax", temperature: float = 0.1):
        split_rule(mlp_rule, temperature)
        self.handle = handle
        self.mlp_rule, self.temperature = mlp_rule, float(temperature)
        self.sequence = prepare_sequence(handle, prompt_or_messages, max_new_tokens=max_new_tokens, target=target,
                                         min_new_tokens=0)
        refuse_if_too_big(handle, "head_contributions", len(self.sequence.tokens), 0, {})
        self.frozen = FrozenForward(handle, self.sequence.input_ids)
        n_prompt = self.sequence.n_prompt
        start = n_prompt if len(self.tokens) > n_prompt else 1
        self.target_positions = list(range(start, len(self.tokens)))
        self.query_positions = [p - 1 for p in self.target_positions]
        self._attention: np.ndarray | None = None

    @property
    def tokens(self):
        return self.sequence.tokens

    @property
    def model_id(self) -> str:
        return self.handle.model_id

    @property
    def prompt_text(self) -> str:
        return self.sequence.prompt_text

    @property
    def n_layers(self) -> int:
        return self.frozen.n_layers

    @property
    def n_heads(self) -> int:
        return self.frozen.n_heads

    @property
    def attention(self) -> np.ndarray:
        """(L, H, T, T) attention weights of the real forward, rows queries, columns keys."""
        if self._attention is None:
            self._attention = torch.stack([b.attention for b in self.frozen.blocks]).cpu().numpy()
        return self._attention

    def estimate(self, row: int):
        """What contributions(row) will take: head-level DePass from every layer over the row's prefix."""
        from attrwidgets.core.estimate import as_estimate, cost_of

        position = self.query_positions[check_row(row, len(self.target_positions))]
        return as_estimate(self.handle, cost_of(self.handle, "head_contributions", position + 1, 0,
                                                {"mlp_rule": self.mlp_rule}))

    def contributions(self, row: int, *, cancel: threading.Event | None = None, progress: bool = False,
                      on_layer=None) -> HeadContributions:
        """on_layer: see head_contributions_at."""
        row = check_row(row, len(self.target_positions))
        position, target_id = self.query_positions[row], int(self.sequence.input_ids[self.target_positions[row]])
        frozen = self.frozen.prefix(position + 1)
        result = head_contributions_at(
            frozen, position, target_id, mlp_rule=self.mlp_rule, temperature=self.temperature,
            tokens=self.tokens[: position + 1], progress=progress, cancel=cancel, model_id=self.model_id,
            prompt=self.prompt_text, target_text=self.tokens[self.target_positions[row]].clean, on_layer=on_layer,
        )
        return widen(result, self.tokens, self.attention)

    def head_split(self, row: int, layer: int, head: int, *, cancel: threading.Event | None = None) -> HeadSplit:
        """What head (layer, head) carries to row's target logit from each source token (core/depass/head_split.py):
        scores over every position of the sequence (zero after the explained one), summing to the head's
        contribution in contributions(row)."""
        row = check_row(row, len(self.target_positions))
        position, target_id = self.query_positions[row], int(self.sequence.input_ids[self.target_positions[row]])
        split = head_split_at(self.frozen.prefix(position + 1), layer, head, position, target_id,
                              mlp_rule=self.mlp_rule, temperature=self.temperature, cancel=cancel)
        scores = np.zeros(len(self.tokens), np.float32)
        scores[: position + 1] = split.scores
        split.scores = scores
        return split


def widen(result: HeadContributions, tokens, attention: np.ndarray) -> HeadContributions:
    """A result computed on a prefix, shown on the whole sequence: per_source padded with zeros (later
    positions cannot contribute), the whole sequence's attention patterns."""
    from dataclasses import replace

    T, t = len(tokens), result.per_source.shape[-1]
    if T == t:
        return result
    per_source = np.zeros(result.per_source.shape[:2] + (T,), np.float32)
    per_source[..., :t] = result.per_source
    return replace(result, tokens=list(tokens), per_source=per_source, attention=attention)
