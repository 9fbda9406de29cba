"""What a computation will cost before it runs: work and peak memory of every compute function, from the
model's shape and the length of the sequence (docs/methods/estimate.md).

Work is counted in three kinds, because a CPU or GPU runs them at very different speeds:
  dense      matrix products over a long inner dimension (the weights, attention weights x values), 2 FLOPs
             per multiply-add
  mixing     products over the short head dimension (queries x keys), which run several times slower
  passes     bytes of memory-bound work on (H, T, T) tensors (scale, mask, softmax and their gradients in the
             eager attention): what dominates a long prompt on a CPU
core/estimate.py turns them into seconds with rates measured once on the device. Memory is the peak of what
the computation adds to the loaded model: saved activations, captured attention, component stacks, results.
These are models, not measurements: benchmarks/estimate/bench_estimate.py checks them against real runs.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOAT = 4  # activations the methods keep are float32
# Memory-bound passes over one layer's (H, T, T) attention in the model's eager attention:
# forward: scale, mask add, softmax (about two passes); backward: softmax's gradient (two) and the scale's.
EAGER_FORWARD_PASSES = 4
EAGER_BACKWARD_PASSES = 4


@dataclass(frozen=True)
class Work:
    dense: float = 0.0  # FLOPs
    mixing: float = 0.0  # FLOPs
    passes: float = 0.0  # bytes

    def __add__(self, other: Work) -> Work:
        return Work(self.dense + other.dense, self.mixing + other.mixing, self.passes + other.passes)

    def __mul__(self, k: float) -> Work:
        return Work(self.dense * k, self.mixing * k, self.passes * k)

    __rmul__ = __mul__


@dataclass(frozen=True)
class Cost:
    work: Work
    peak_bytes: float


@dataclass(frozen=True)
class ModelShape:
    """The sizes every cost model needs, read from the model itself."""

    n_layers: int
    d_model: int
    n_heads: int
    head_dim: int
    d_kv: int  # key/value width (n_kv_heads * head_dim)
    d_ff: int
    vocab: int
    layer_params: int  # weights of one block (every matrix product of a token goes through them once)
    param_bytes: int  # bytes of one parameter (the model's dtype)
    model_bytes: int  # every parameter

    @property
    def runtime_bytes(self) -> float:
        """What any call adds besides its tensors: the math libraries' workspaces and pools on first use and
        transposed weight copies, measured at 0.35-0.5 GiB for the 0.5 GiB default model
        (benchmarks/estimate/bench_estimate.py at 256 tokens)."""
        return 2**28 + self.model_bytes / 2

    @classmethod
    def of(cls, handle) -> ModelShape:
        model, adapter = handle.model, handle.adapter
        cfg = model.config
        d = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", 256)
        heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", 8)
        head_dim = getattr(cfg, "head_dim", None) or d // heads
        kv = getattr(cfg, "num_key_value_heads", None) or heads
        d_ff = getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * d
        block = adapter.get(model, adapter.blocks)[0]
        first = next(model.parameters())
        embedding = adapter.embedding(model).weight
        return cls(n_layers=adapter.n_layers(model), d_model=d, n_heads=heads, head_dim=head_dim, d_kv=kv * head_dim,
                   d_ff=d_ff, vocab=int(embedding.shape[0]), layer_params=sum(p.numel() for p in block.parameters()),
                   param_bytes=first.element_size(),
                   model_bytes=sum(p.numel() * p.element_size() for p in model.parameters()))

    # -- one pass of the model --------------------------------------------------------------------------
    def forward(self, T: int, layers: float | None = None, logits: int = 1) -> Work:
        """The model's forward over T tokens (through `layers` blocks, default all), the unembedding at
        `logits` positions."""
        L = self.n_layers if layers is None else layers
        scores = 2 * T * T * self.n_heads * self.head_dim  # queries x keys; weights x values costs the same
        return Work(dense=L * (2 * T * self.layer_params + scores) + 2 * logits * self.d_model * self.vocab,
                    mixing=L * scores, passes=L * EAGER_FORWARD_PASSES * self.attention_bytes(T))

    def backward(self, T: int, layers: float | None = None, logits: int = 1) -> Work:
        """Gradients with respect to the input only (parameters are frozen): the weight products once, the
        four attention products (one of them over the head dimension, the slow kind)."""
        L = self.n_layers if layers is None else layers
        scores = 2 * T * T * self.n_heads * self.head_dim
        return Work(dense=L * (2 * T * self.layer_params + 3 * scores) + 2 * logits * self.d_model * self.vocab,
                    mixing=L * scores, passes=L * EAGER_BACKWARD_PASSES * self.attention_bytes(T))

    def attention_bytes(self, T: int) -> float:
        """One layer's attention weights (H, T, T) in float32 (eager attention computes them in float32)."""
        return FLOAT * self.n_heads * T * T

    def saved_bytes(self, T: int, layers: float | None = None) -> float:
        """What one forward keeps for its backward: the softmax output of every layer and the block's
        activations (norms, q/k/v, the MLP's hidden states)."""
        L = self.n_layers if layers is None else layers
        per_token = 8 * self.d_model + 2 * self.d_kv + 4 * self.d_ff
        return L * (self.attention_bytes(T) + T * per_token * self.param_bytes)

    def gradient_peak(self, T: int, n_seeds: int = 1) -> float:
        """The backward's largest temporaries: one layer's attention gradients for every seed at once."""
        return (2 + 2 * n_seeds) * self.attention_bytes(T)

    # -- the captured forward of DePass and the graphs (core/frozen.py) -------------------------------
    def frozen_bytes(self, T: int) -> float:
        """Every layer's attention (twice while the causal copy is made) and its recorded states."""
        per_token = 5 * self.d_model + 2 * self.d_ff + 4
        return self.n_layers * (2 * self.attention_bytes(T) + FLOAT * T * per_token)

    def component_layer(self, T: int, M: float, causal_share: float = 1.0) -> Work:
        """One block applied to M components of the stream, with the attention and the MLP's split frozen:
        values, weights x values, output, and the MLP's input and output maps per component."""
        dense = 2 * T * (self.d_model * self.d_kv + self.d_model * self.d_model + 2 * self.d_model * self.d_ff)
        dense += 2 * T * T * self.n_heads * self.head_dim  # weights x values of every component: one long product
        return Work(dense=M * dense * causal_share, passes=M * FLOAT * T * self.d_ff * 6 * causal_share)


def generation(shape: ModelShape, n_prompt: int, n_new: int) -> Cost:
    """Greedy continuation: one forward over the prompt, then one short step per new token."""
    T = n_prompt + n_new
    step = Work(dense=shape.n_layers * 2 * shape.layer_params + 2 * shape.d_model * shape.vocab,
                mixing=shape.n_layers * 4 * T * shape.d_model)
    cache = 2 * shape.n_layers * T * shape.d_kv * shape.param_bytes
    return Cost(shape.forward(n_prompt) + step * n_new, cache + 3 * shape.attention_bytes(n_prompt))
