"""Harvest (MLP input, MLP output) pairs of every layer for transcoder training, to a memory budget.

The input is the output of the pre-MLP norm (what the MLP itself reads), the output is the MLP's output:
the two ends a transcoder replaces (docs/methods/graph.md). Activations are recorded by forward hooks, with
no gradients, in eval mode, and stored as bfloat16 (half the memory of fp32; its 8-bit mantissa costs far
less than the reconstruction error we train down to).

Two sources of tokens:
- `texts` (any iterable of strings): tokenised one at a time (a generator is consumed only as far as the
  budget needs), BOS prepended as the graph does, cut into windows of `context` tokens.
- None: the model samples text itself from varied short prompts (no data download). Sampling runs through
  `generate` with its KV cache while the hooks record, so every token is computed once: the prefill records
  the prompt, each decoding step the token it feeds.
Position 0 of every sequence is dropped: it is the attention sink (huge, nearly constant MLP outputs that
would dominate the variance) and a graph has no feature nodes there.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from attrwidgets.core.hooks import own_thread
from attrwidgets.core.sequence import eos_ids
from attrwidgets.errors import AttrWidgetsError

STORAGE_DTYPE = torch.bfloat16

# Varied seeds for self-sampled text: plain continuations and chat requests, prose, code, lists, numbers.
PLAIN_PROMPTS = [
    "The history of the city begins", "In a small village by the sea,", "def fibonacci(n):", "import numpy as np\n",
    "Dear Sir or Madam,\n", "The recipe calls for", "Breaking news:", "Once upon a time", "The theorem states that",
    "Chapter 1\n\n", "Q: What is the boiling point of water?\nA:", "1. Preheat the oven", "The weather today",
    "<html>\n<body>\n", "SELECT name FROM", "The capital of France is", "My favourite book is", "In 1969,",
    "The mitochondria is", "Translate to French: good morning ->", "The results of the experiment show",
    "Once the meeting started,", "for (int i = 0; i <", "The stock market", "Abstract: We propose",
]
CHAT_PROMPTS = [
    "Write a short story about a dragon who learns to cook.", "Explain how photosynthesis works.",
    "Give me three tips for learning a new language.", "What is the capital of Australia?",
    "Write a Python function that reverses a string.", "Summarize the plot of Romeo and Juliet.",
    "How do vaccines work?", "Write a haiku about autumn.", "What are prime numbers? Give examples.",
    "Describe your ideal weekend.", "Compare cats and dogs as pets.", "How does a car engine work?",
    "Write an email asking for a day off.", "List five countries in Africa and their capitals.",
    "Explain the difference between weather and climate.", "What is 17 times 23? Show your steps.",
    "Tell me a joke about computers.", "Why is the sky blue?", "Write a limerick about a cat.",
    "How do I make a cup of tea?", "What happened in the French Revolution?", "Explain recursion to a child.",
    "Give me a workout plan for beginners.", "What is machine learning?", "Translate 'thank you' into Spanish.",
]


@dataclass
class Harvest:
    """Per token, every layer's MLP input and output; the last `n_eval` tokens are held out."""

    inputs: torch.Tensor  # (N, L, D) STORAGE_DTYPE
    outputs: torch.Tensor  # (N, L, D)
    n_eval: int
    source: str  # "texts" | "self-sampled"

    @property
    def n_train(self) -> int:
        return self.inputs.shape[0] - self.n_eval

    def split(self):
        n = self.n_train
        return (self.inputs[:n], self.outputs[:n]), (self.inputs[n:], self.outputs[n:])


def bytes_per_token(n_layers: int, d_model: int) -> int:
    return 2 * n_layers * d_model * torch.finfo(STORAGE_DTYPE).bits // 8


class _Recorder:
    """Forward hooks on what every layer's MLP reads and what it adds to the stream; one (B, T, L, D) pair per call."""

    def __init__(self, handle):
        adapter, model = handle.adapter, handle.model
        self.n_layers = adapter.n_layers(model)
        self.calls_in: list[list[torch.Tensor]] = []
        self.calls_out: list[list[torch.Tensor]] = []
        self.hooks = []
        for layer in range(self.n_layers):
            # In: what the MLP reads (its norm's output; OLMo 2 has no norm there: the MLP's own input).
            # Out: what the stream gets (after Gemma's / OLMo 2's post-norm): what a transcoder replaces.
            record_in, record_out = self._hook(layer, self.calls_in), self._hook(layer, self.calls_out)
            if adapter.norm_mlp:
                norm = adapter.get(model, adapter.norm_mlp, block=layer)
                self.hooks.append(norm.register_forward_hook(own_thread(record_in)))
            else:
                mlp = adapter.get(model, adapter.mlp, block=layer)
                self.hooks.append(mlp.register_forward_pre_hook(own_thread(lambda m, args, r=record_in: r(m, args, args[0]))))
            added = adapter.get(model, adapter.post_norm_mlp or adapter.mlp, block=layer)
            self.hooks.append(added.register_forward_hook(own_thread(record_out)))

    def _hook(self, layer, calls):
        def record(module, args, output):
            out = output[0] if isinstance(output, tuple) else output
            if layer == 0:
                calls.append([None] * self.n_layers)
            calls[-1][layer] = out.detach().to(STORAGE_DTYPE)

        return record

    def take(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, L, D) inputs and outputs of all calls since the last take, concatenated along time."""
        def stack(calls):
            return torch.cat([torch.stack(layers, dim=2) for layers in calls], dim=1)

        pair = stack(self.calls_in), stack(self.calls_out)
        self.calls_in.clear()
        self.calls_out.clear()
        return pair

    def close(self):
        for hook in self.hooks:
            hook.remove()


def bos_id(tokenizer) -> int | None:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def with_bos(tokenizer, ids: list[int]) -> list[int]:
    """The graph's convention (docs/methods/graph.md): BOS prepended unless the first id is already special."""
    bos = bos_id(tokenizer)
    if bos is not None and (not ids or ids[0] not in set(tokenizer.all_special_ids)):
        return [int(bos)] + ids
    return ids


class _Sink:
    """Preallocated (N, L, D) storage filled batch by batch; stops at capacity. `spare` rows beyond it are
    left for the held-out tokens, so that adding them copies nothing (a concatenation would briefly need
    twice the memory budget)."""

    def __init__(self, capacity: int, n_layers: int, d_model: int, spare: int = 0):
        self.inputs = torch.empty(capacity + spare, n_layers, d_model, dtype=STORAGE_DTYPE)
        self.outputs = torch.empty_like(self.inputs)
        self.capacity = capacity
        self.filled = 0
        self.sequences: list[int] = []  # tokens per recorded sequence, to hold out whole sequences

    @property
    def full(self) -> bool:
        return self.filled >= self.capacity

    def add(self, x: torch.Tensor, y: torch.Tensor, keep: torch.Tensor) -> None:
        """x, y: (B, T, L, D); keep: (B, T) bool."""
        for row in range(x.shape[0]):
            xs, ys = x[row][keep[row]], y[row][keep[row]]
            n = min(xs.shape[0], self.capacity - self.filled)
            if n <= 0:
                return
            self.inputs[self.filled:self.filled + n] = xs[:n].cpu()
            self.outputs[self.filled:self.filled + n] = ys[:n].cpu()
            self.filled += n
            self.sequences.append(n)

    def finish(self, source: str, eval_fraction: float, max_eval: int) -> Harvest:
        if self.filled == 0:
            raise AttrWidgetsError(
                "The training texts yield no tokens (each sequence needs at least two tokens, since position 0 "
                "is not used): pass non-empty texts, or texts=None to let the model sample its own.")
        n_eval = min(int(self.filled * eval_fraction), max_eval)
        # Hold out whole sequences from the end so held-out tokens never share a context with training ones.
        tail = 0
        for n in reversed(self.sequences):
            if tail >= n_eval:
                break
            tail += n
        n_eval = min(tail, self.filled // 2)
        return Harvest(self.inputs[:self.filled], self.outputs[:self.filled], n_eval, source)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="tok", disable=not enabled, leave=False)


@torch.no_grad()
def harvest_texts(handle, texts, n_tokens: int, *, context: int = 128, batch_size: int = 16,
                  eval_fraction: float = 0.05, max_eval: int = 4096, progress: bool = True,
                  token_windows: list[list[int]] | None = None) -> Harvest:
    """Record the given texts (or ready token windows) in batches of windows of `context` tokens."""
    if isinstance(texts, str):
        raise AttrWidgetsError("texts must be an iterable of strings (a list), not one string: wrap it in [ ].")
    model, tokenizer, device = handle.model, handle.tokenizer, handle.device
    n_layers = handle.adapter.n_layers(model)
    d_model = handle.adapter.embedding(model).weight.shape[1]
    context = min(context, handle.max_context)
    sink, recorder = _Sink(n_tokens, n_layers, d_model), _Recorder(handle)
    windows: list[list[int]] = []
    bar = _progress(n_tokens, "harvesting activations", progress)

    def flush():
        width = max(len(w) for w in windows)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(windows), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, window in enumerate(windows):  # right padding: real tokens keep positions 0..n-1
            ids[row, :len(window)] = torch.tensor(window)
            mask[row, :len(window)] = 1
        before = sink.filled
        model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
        x, y = recorder.take()
        keep = mask.bool()
        keep[:, 0] = False  # the attention sink
        sink.add(x, y, keep.to(x.device))
        bar.update(sink.filled - before)
        windows.clear()

    # Exact repeats are recorded once: the held-out windows (the last ones) must not be copies of training
    # ones, or a transcoder that memorised them reports a held-out FVE near 1 (measured: 0.94 on repeated
    # texts against 0.64 on new ones), and a repeat adds nothing an extra epoch would not.
    seen: set[tuple[int, ...]] = set()
    try:
        for window in (token_windows if token_windows is not None else _windows(tokenizer, texts, context)):
            window = window[:context]
            if len(window) >= 2 and tuple(window) not in seen:
                seen.add(tuple(window))
                windows.append(window)
            if len(windows) == batch_size:
                flush()
            if sink.full:
                break
        if windows and not sink.full:
            flush()
    finally:
        recorder.close()
        bar.close()
    return sink.finish("texts", eval_fraction, max_eval)


def _windows(tokenizer, texts, context: int):
    """Token windows of at most `context` tokens, BOS first, from an iterable of strings (consumed lazily)."""
    try:
        iterator = iter(texts)
    except TypeError as exc:
        raise AttrWidgetsError(f"texts must be an iterable of strings; got a {type(texts).__name__}.") from exc
    for text in iterator:
        if not isinstance(text, str):
            raise AttrWidgetsError(f"texts must hold strings; got a {type(text).__name__}.")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for start in range(0, len(ids), context - 1):
            yield with_bos(tokenizer, ids[start:start + context - 1])


def _sampling_prompts(tokenizer, rng: random.Random, count: int) -> list[list[int]]:
    chat = getattr(tokenizer, "chat_template", None) is not None
    prompts = []
    for _ in range(count):
        if chat and rng.random() < 0.5:
            message = [{"role": "user", "content": rng.choice(CHAT_PROMPTS)}]
            text = tokenizer.apply_chat_template(message, add_generation_prompt=True, tokenize=False)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            ids = tokenizer(rng.choice(PLAIN_PROMPTS), add_special_tokens=False)["input_ids"]
        prompts.append(with_bos(tokenizer, ids))
    return prompts


def _sampling_copy(handle):
    """On a CPU, sample with a bfloat16 copy of an fp32 model: decoding runs ~2.5x faster there (measured on
    SmolLM2, README "Transcoders"), and the text only has to be typical of the model, not bit-exact. The
    held-out tokens the figures are measured on go through the real model."""
    model = handle.model
    if handle.device.type != "cpu" or next(model.parameters()).dtype != torch.float32:
        return handle
    import copy

    from attrwidgets.models import ModelHandle

    fast = copy.deepcopy(model).to(torch.bfloat16).eval()
    return ModelHandle(model=fast, tokenizer=handle.tokenizer, adapter=handle.adapter, model_id=handle.model_id)


@torch.no_grad()
def harvest_sampled(handle, n_tokens: int, *, seed: int = 0, new_tokens: int = 128, batch_size: int = 128,
                    eval_fraction: float = 0.05, max_eval: int = 4096, progress: bool = True) -> Harvest:
    """Text the model samples itself (temperature 1 among the 50 likeliest tokens), recorded while it is
    generated; the held-out sequences are recorded again through the real model."""
    n_eval = max(1, min(int(n_tokens * eval_fraction), max_eval))
    sampler = _sampling_copy(handle)
    sink, eval_ids = _sample(sampler, n_tokens, seed=seed, new_tokens=new_tokens, batch_size=batch_size,
                             n_eval=n_eval, progress=progress)
    del sampler
    sink.finish("self-sampled", 0.0, 0)  # refuses an empty harvest
    n_train, n_held = sink.filled, 0
    if eval_ids:  # at most n_eval tokens (_sample cuts the last window): they fit the sink's spare rows
        held_out = harvest_texts(handle, [], sum(len(window) - 1 for window in eval_ids), token_windows=eval_ids,
                                 context=handle.max_context, eval_fraction=0.0, progress=False)
        n_held = held_out.inputs.shape[0]
        sink.inputs[n_train:n_train + n_held] = held_out.inputs
        sink.outputs[n_train:n_train + n_held] = held_out.outputs
        del held_out
    return Harvest(sink.inputs[:n_train + n_held], sink.outputs[:n_train + n_held], n_held, "self-sampled")


def _sample(handle, n_tokens, *, seed, new_tokens, batch_size, n_eval, progress):
    """-> (the sink of the recorded training tokens, with n_eval spare rows; token windows of the held-out
    sequences, n_eval tokens at most)."""
    model, tokenizer, device = handle.model, handle.tokenizer, handle.device
    n_layers = handle.adapter.n_layers(model)
    d_model = handle.adapter.embedding(model).weight.shape[1]
    eos = eos_ids(handle)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(eos), 0)
    sink, recorder = _Sink(n_tokens, n_layers, d_model, spare=n_eval), _Recorder(handle)
    rng = random.Random(seed)
    eval_windows, eval_tokens, per_row = [], 0, None
    bar = _progress(n_tokens + n_eval, "sampling text + harvesting", progress)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            while not sink.full or eval_tokens < n_eval:
                rows = batch_size
                if per_row:  # the last batch: only as many rows as the remaining tokens need
                    missing = sink.capacity - sink.filled + max(0, n_eval - eval_tokens)
                    rows = max(1, min(batch_size, math.ceil(missing / per_row) + 1))
                prompts = _sampling_prompts(tokenizer, rng, rows)
                width = max(len(p) for p in prompts)
                budget = max(2, min(new_tokens, handle.max_context - width))
                ids = torch.full((rows, width), pad, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for row, prompt in enumerate(prompts):  # left padding, as generate expects
                    ids[row, width - len(prompt):] = torch.tensor(prompt)
                    mask[row, width - len(prompt):] = 1
                sequences = model.generate(
                    input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=True, temperature=1.0,
                    top_k=50, top_p=1.0, max_new_tokens=budget, min_new_tokens=budget // 4, pad_token_id=pad,
                    eos_token_id=sorted(eos) or None)
                x, y = recorder.take()
                keep = _sampled_positions(mask, sequences[:, width:].cpu(), eos, fed=x.shape[1])
                per_row = max(1.0, float(keep.sum(1).float().mean()))
                before = sink.filled
                for row in range(rows):
                    if eval_tokens < n_eval:  # the first sequences are held out (their windows, not activations)
                        positions = keep[row].nonzero().flatten()[: n_eval - eval_tokens]
                        if positions.numel() == 0:
                            continue
                        window = sequences[row, : int(positions.max()) + 1][mask.shape[1] - int(mask[row].sum()):]
                        eval_windows.append(window.tolist())
                        eval_tokens += positions.numel()
                        keep[row] = False
                sink.add(x, y, keep.to(x.device))
                bar.update(sink.filled - before)
    finally:
        recorder.close()
        bar.close()
    return sink, eval_windows


def _sampled_positions(prompt_mask: torch.Tensor, generated: torch.Tensor, eos: set[int], fed: int):
    """(B, fed) bool: which fed positions hold real tokens, minus each sequence's first real position.

    Fed positions are the prompt (left padded) and every generated token but the last; a generated token is
    real unless an end-of-sequence token came before it (generate pads finished rows but still runs them).
    """
    width = prompt_mask.shape[1]
    is_eos = torch.zeros_like(generated, dtype=torch.bool)
    for token in eos:
        is_eos |= generated == token
    ended_before = (is_eos.long().cumsum(1) - is_eos.long()) > 0
    real_generated = ~ended_before[:, :fed - width]
    keep = torch.cat([prompt_mask.bool(), real_generated], dim=1)
    first = prompt_mask.argmax(dim=1)  # first real position of each row (left padding)
    keep[torch.arange(keep.shape[0]), first] = False
    return keep
