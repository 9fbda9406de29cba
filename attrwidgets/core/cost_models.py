"""The cost model of each compute function: (shape, sequence sizes, options) -> Cost (core/costs.py).

Each follows what its function runs (docs/methods/estimate.md): how many forwards and backwards over how many
tokens, how many points a path has, how many components a DePass stack holds, and what stays in memory at
once. Adaptive integrated gradients counts its largest number of nodes, so its figure is an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from attrwidgets.core.costs import FLOAT, Cost, ModelShape, Work, generation


@dataclass(frozen=True)
class Sizes:
    """The sequence a call works on: prompt tokens, tokens it generates (or forces), the chunk budget."""

    n_prompt: int
    n_new: int
    chunk_budget: float  # bytes the function lets one chunk of work take (its own default_budget)
    batch_points: int = 1  # path points per forward the function will choose (forward.step_batch_size)
    generates: bool = True  # False: the tokens exist already (a session computing more rows)
    rows: int | None = None  # targets computed in this call (None: every one of the n_new)

    @property
    def length(self) -> int:
        return self.n_prompt + self.n_new

    @property
    def n_targets(self) -> int:
        return max(1, self.n_new if self.rows is None else self.rows)

    def generation(self, shape: ModelShape) -> Cost:
        return generation(shape, self.n_prompt, self.n_new) if self.generates else Cost(Work(), 0.0)


def _gradients(shape: ModelShape, T: int, n: int, points: float, layers=None, batch: int = 1) -> Cost:
    """`points` forwards over T tokens (through `layers` blocks), each with a backward per target; `batch`
    points at once in memory."""
    work = (shape.forward(T, layers, logits=n) + shape.backward(T, layers, logits=n) * n) * points
    peak = batch * (shape.saved_bytes(T, layers) + shape.gradient_peak(T, n if batch == 1 else 1))
    return Cost(work, peak + FLOAT * (n + 2) * T * shape.d_model * batch)


def token_method(shape: ModelShape, s: Sizes, options: dict) -> Cost:
    """aw.attribute / AttributionSession.compute, every registered method."""
    method = options.get("method", "integrated_gradients")
    gen = s.generation(shape)
    T, n = s.length - 1, s.n_targets  # the target function's forward stops before the last token
    if method in ("saliency", "input_x_gradient"):
        cost = _gradients(shape, T, n, points=1)
    elif method == "attention":
        cost = Cost(shape.forward(T), 2 * shape.n_layers * shape.attention_bytes(T))
    else:
        steps = int(options.get("n_steps", 128)) + 2  # and the two ends, for the completeness error
        layers = None
        if method == "layer_integrated_gradients":
            layers = shape.n_layers - options.get("block", shape.n_layers // 2)
        adaptive = options.get("quadrature", "adaptive") == "adaptive"
        if adaptive:  # nodes are chosen per target: each target runs its own path
            cost = _gradients(shape, T, 1, points=steps * n, layers=layers, batch=s.batch_points)
        else:
            cost = _gradients(shape, T, n, points=steps, layers=layers, batch=s.batch_points)
    if s.generates:  # the session's one forward for the targets' probabilities (logits at every position)
        gen = Cost(gen.work + shape.forward(s.length, logits=s.length),
                   max(gen.peak_bytes, 2 * FLOAT * s.length * shape.vocab))
    return Cost(gen.work + cost.work, max(gen.peak_bytes, cost.peak_bytes))


def component_count(shape: ModelShape, level: str, T: int, options: dict) -> int:
    if level == "token":
        return T + 1
    if level == "head":
        return shape.n_heads + 2
    if level == "neuron":
        return _count(options.get("neurons")) + 2
    if level == "subspace":
        components = options.get("components")
        return _count(components) + (2 if isinstance(components, (list, tuple)) else 1)
    return 3  # module: the stream before, the module's output, the bias


def _count(values) -> int:
    """How many neurons or components were asked for (the seed checks them; a bad value counts as one)."""
    try:
        return len(values)
    except TypeError:
        return 1


def _propagation_peak(shape: ModelShape, T: int, M: int, budget: float, causal: bool = False) -> float:
    """The stack, its normed copy and the result's copy, and one chunk's temporaries (the MLP's, the larger:
    its neurons' shares per component): chunks of positions sized to the budget, and at most an eighth of the
    prompt where components start late (core/frozen_ops.py)."""
    positions = -(-T // 8) if causal else T
    per_cell = FLOAT * (4 * shape.d_ff + shape.d_model)
    return 3 * FLOAT * M * T * shape.d_model + min(budget, M * positions * per_cell)


def depass(shape: ModelShape, s: Sizes, options: dict) -> Cost:
    T, L = s.length, shape.n_layers
    level = options.get("level", "token")
    M = component_count(shape, level, T, options)
    start = options.get("start_layer", 0) if level == "token" else (options.get("layer") or 0)
    end = options.get("end_layer") or L
    causal = 0.56 if level == "token" else 1.0  # token k's component is zero before position k
    work = s.generation(shape).work + shape.forward(T)
    work = work + shape.component_layer(T, M, causal) * max(1, end - (start % L))
    return Cost(work, shape.frozen_bytes(T) + _propagation_peak(shape, T, M, s.chunk_budget, level == "token"))


def head_contributions(shape: ModelShape, s: Sizes, options: dict) -> Cost:
    """A head-level DePass from every layer to the end: L (L + 1) / 2 block applications of H + 2 components."""
    T, L, M = s.length, shape.n_layers, shape.n_heads + 2
    work = shape.forward(T) + shape.component_layer(T, M) * (L * (L + 1) / 2)
    return Cost(work, shape.frozen_bytes(T) + _propagation_peak(shape, T, M, s.chunk_budget))


def attribution_graph(shape: ModelShape, s: Sizes, options: dict) -> Cost:
    """Component graph: a node per head and MLP output of every layer and position. The captured forward, the
    per-head outputs of every layer, then sweeps of `batch_size` rows down the frozen residual stream (each
    contracts its gradients with every node's output), and the float32 adjacency (rows x columns) that pruning
    reads several times."""
    T, L, H, D = s.length, shape.n_layers, shape.n_heads, shape.d_model
    columns = T * (L * (H + 1) + 1)
    rows = min(options.get("max_feature_nodes") or columns, columns) + int(options.get("max_logits", 10))
    batch = int(options.get("batch_size") or 32)
    head_outputs = FLOAT * L * T * H * D
    # Each row's sweep gathers the gradient at every node's position and contracts it with the node's output:
    # memory-bound, about 0.3 of a full read of L x T x (H + 1) vectors per row (rows are batched by position,
    # so most read a prefix; measured at 256-2,048 tokens, benchmarks/estimate/bench_estimate.py).
    sweeps = Work(passes=0.3 * FLOAT * rows * L * T * (H + 1) * D + 10 * FLOAT * rows * columns)
    work = shape.forward(T) * 2 + sweeps
    peak = shape.frozen_bytes(T) + head_outputs + FLOAT * rows * columns + FLOAT * batch * (columns + 4 * T * D)
    return Cost(work, peak)


def lig(shape: ModelShape, s: Sizes, options: dict) -> Cost:
    """Layer-wise IG: per route, layer, target (and head) a path of n_steps points through one block."""
    T = s.length
    routes = options.get("routes", ("layer", "att", "mlp"))
    layers = len(options.get("layers") or range(shape.n_layers))
    targets = len(options.get("target_tokens") or range(T))
    per_route = {"layer": 1, "mlp": 1, "att": shape.n_heads if options.get("target_head") is None else 1}
    points = int(options.get("n_steps", 32)) * layers * targets * sum(per_route[r] for r in routes)
    block = shape.forward(T, layers=1) + shape.backward(T, layers=1)
    states = FLOAT * shape.n_layers * T * 5 * shape.d_model  # every block's five boundaries (core/boundaries.py)
    peak = states + s.batch_points * shape.saved_bytes(T, 1) + shape.gradient_peak(T)
    return Cost(shape.forward(T) + block * points, peak)


def dlig(shape: ModelShape, s: Sizes, options: dict) -> Cost:
    """A masked-diffusion run: `denoising_steps` predictions over the whole sequence, each with a layer IG of the
    tokens it unmasks (bidirectional, so every step's forward covers the whole sequence)."""
    T = s.length
    steps = int(options.get("denoising_steps", options.get("steps", 16)))
    per_step = max(1, s.n_new // max(1, steps))
    layers = shape.n_layers - options.get("block", shape.n_layers // 2)
    ig = _gradients(shape, T, per_step, points=int(options.get("n_steps", 32)) + 2, layers=layers,
                    batch=s.batch_points)
    return Cost((shape.forward(T) + ig.work) * steps, ig.peak_bytes)


MODELS = {
    "attribute": token_method,
    "layer_ig": token_method,
    "depass": depass,
    "head_contributions": head_contributions,
    "attribution_graph": attribution_graph,
    "lig": lig,
    "dlig": dlig,
}
