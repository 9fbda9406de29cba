"""aw.lig(): layer-wise integrated gradients at module boundaries, and the session a live view grows.

Names, meanings and defaults follow the upstream `lig.explain` so its users can switch; the default
quadrature is ours (Gauss-Legendre: the most accurate per evaluation we measured, README table).
One Boundaries forward serves every route and layer; each route batches all its target columns (and
heads) and path points through core/integrate.py.
"""

from __future__ import annotations

import threading

import numpy as np

from attrwidgets.core.boundaries import Boundaries
from attrwidgets.core.estimate import refuse_if_too_big
from attrwidgets.core.forward import frozen_parameters
from attrwidgets.core.integrate import check_rule
from attrwidgets.core.lig import routes as R
from attrwidgets.core.lig.baselines import (
    BASELINES,
    check_baseline,
    itb_map_ratio,
    itb_zero_ratio,
    raw_baseline,
    resolve_granularity,
)
from attrwidgets.core.lig.result import LayerAttribution, RouteColumns
from attrwidgets.core.sequence import prepare_sequence
from attrwidgets.core.token.methods.integrated_gradients import check_batch_size, check_n_steps
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.models import as_handle

DEFAULTS = {
    "granularity": "all",
    "layers": None,
    "target_tokens": None,
    "target_head": None,
    "n_steps": 32,
    "baseline_layer": "self_input_token",
    "baseline_att": "self_input_token",
    "baseline_mlp": "zero",
    "quadrature": "gauss_legendre",
    "include_residual_connection": True,
    "batch_size": None,  # memory budget in bytes per chunk of path points; None = from free memory
}
ROUTE_OF_VIEW = {"composed": ("att", "mlp")}


def _index_list(values, n: int, what: str, hint: str) -> list[int]:
    if values is None:
        return list(range(n))
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not -n <= v < n:
            raise AttrWidgetsError(f"{what} {v!r} is out of range: {hint} has {n} (0..{n - 1}).")
        out.append(int(v) % n)
    if not out:
        raise AttrWidgetsError(f"{what}s is empty: pass None for all of them, or some indices.")
    return sorted(set(out))


def _routes_for(adapter, routes: list[str], granularity) -> list[str]:
    """The routes this architecture has. A parallel block (GPT-NeoX) runs its MLP on the block's input, not
    on z + attention: there is no u for the MLP route (u->z) to start from, so 'all' leaves it out and asking
    for it is an error (docs/methods/lig.md)."""
    if not adapter.parallel or "mlp" not in routes:
        return routes
    if granularity != "all":
        raise AttrWidgetsError(
            f"{adapter.name!r} runs attention and MLP in parallel from the block input: the MLP route (u->z) has "
            "no u to start from. Use granularity 'layer' or 'att' ('all' gives both).")
    return [r for r in routes if r != "mlp"]


class LigSession:
    """The model, one boundary forward of the text, and a LayerAttribution that grows column by column."""

    def __init__(self, model, text, **options):
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise AttrWidgetsError(f"Unknown lig option(s) {sorted(unknown)}: valid ones are {', '.join(DEFAULTS)}.")
        opts = {**DEFAULTS, **options}
        opts["routes"] = resolve_granularity(opts["granularity"])
        for route in ("layer", "att", "mlp"):
            check_baseline(route, opts[f"baseline_{route}"])
        opts["n_steps"] = check_n_steps(opts["n_steps"])
        opts["batch_size"] = check_batch_size(opts["batch_size"])
        check_rule(opts["quadrature"])
        if opts["quadrature"] in ("trapezoid", "riemann_trapezoid") and opts["n_steps"] < 2:
            raise AttrWidgetsError(f"quadrature={opts['quadrature']!r} needs n_steps >= 2.")
        self.handle = handle = as_handle(model)
        opts["routes"] = _routes_for(handle.adapter, opts["routes"], opts["granularity"])
        seq = prepare_sequence(handle, text, max_new_tokens=0, min_new_tokens=0)  # empty/too long: clear errors
        refuse_if_too_big(handle, "lig", len(seq.tokens), 0, opts)
        self.bounds = Boundaries(handle, seq.input_ids)
        n_layers, n_heads = self.bounds.n_layers, self.bounds.n_heads
        opts["layers"] = _index_list(opts["layers"], n_layers, "Layer", "this model's block list")
        opts["target_tokens"] = _index_list(opts["target_tokens"], len(seq.tokens), "Target token",
                                            "the tokenized text")
        if opts["target_head"] is not None:
            if "att" not in opts["routes"]:
                raise AttrWidgetsError("target_head picks a head of the attention route: add 'att' to granularity "
                                       "(or drop target_head).")
            _index_list([opts["target_head"]], n_heads, "Head", "each attention layer")
        self.options = opts
        self.result = LayerAttribution(
            tokens=seq.tokens, n_layers=n_layers, n_heads=n_heads, hidden_size=self.bounds.hidden_size,
            options={k: v for k, v in opts.items() if k not in ("batch_size",)}, text=seq.prompt_text,
            model_id=handle.model_id, architecture=handle.adapter.name, causal=handle.adapter.causal,
        )
        self.result.session = self
        self.progress = None  # a tqdm bar while lig() runs
        self._lock = threading.Lock()

    # -- one route, some columns -----------------------------------------------------------------------
    def _path(self, cancel) -> R.PathSettings:
        on_chunk = (lambda n: self.progress.update(n)) if self.progress is not None else None
        return R.PathSettings(self.options["quadrature"], self.options["n_steps"], self.options["batch_size"],
                              on_chunk, cancel)

    def attention(self, layer: int) -> np.ndarray:
        if layer not in self.result.attention:
            self.result.attention[layer] = self.bounds.attention_weights(layer).float().cpu().numpy()
        return self.result.attention[layer]

    def _raw(self, route: str, layer: int, targets: list[int], heads: list[int], baseline: str, cancel) -> RouteColumns:
        """Integrate missing columns with a baseline the routes know (zero / ITB / att_itb_a0)."""
        cols = self.result.route(route, layer, baseline, create=True)
        todo = [j for j in targets if any(not cols.has(j, h) for h in (heads if route == "att" else [None]))]
        if not todo:
            return cols
        path, b = self._path(cancel), self.bounds
        if route == "layer":
            out = R.layer_route(b, layer, todo, baseline, path)
            cols.scores[todo], cols.expected[todo], cols.error[todo] = out.scores, out.expected, out.error
        elif route == "mlp":
            out = R.mlp_route(b, layer, todo, baseline, path, self.options["include_residual_connection"])
            cols.scores[todo], cols.expected[todo], cols.error[todo] = out.scores, out.expected, out.error
        else:
            out = R.att_route(b, layer, todo, heads, baseline, path)
            shape = (len(todo), len(heads))
            index = np.ix_(todo, heads)
            cols.scores[index] = out.scores.reshape(*shape, -1)
            cols.expected[index] = out.expected.reshape(shape)
            cols.error[index] = out.error.reshape(shape)
        return cols

    def estimate(self, routes, layers: list[int], targets: list[int]):
        """What computing these routes' columns at these layers for these targets will take."""
        from attrwidgets.core.estimate import as_estimate, cost_of

        parts = [p for r in routes for p in ROUTE_OF_VIEW.get(r, (r,))]
        options = {**self.options, "routes": parts, "layers": list(layers), "target_tokens": list(targets)}
        return as_estimate(self.handle, cost_of(self.handle, "lig", self.result.length, 0, options))

    def ensure(self, route: str, layer: int, target: int, *, baseline: str | None = None, head: int | None = None,
               cancel: threading.Event | None = None) -> None:
        """Compute whatever column `target` of `route` at `layer` still lacks (route 'composed' = att + mlp)."""
        for part in ROUTE_OF_VIEW.get(route, (route,)):
            if part not in BASELINES:
                raise AttrWidgetsError(f"Unknown route {route!r}: use 'layer', 'att', 'mlp' or 'composed'.")
            self.compute(part, [layer], [target], baseline=None if route == "composed" else baseline,
                         heads=None if head is None else [head], cancel=cancel)

    def compute(self, route: str, layers: list[int], targets: list[int], *, baseline: str | None = None,
                heads: list[int] | None = None, cancel=None) -> None:
        _routes_for(self.handle.adapter, [route], route)  # a parallel block has no MLP route: say why
        name = check_baseline(route, baseline or self.result.baseline(route))
        n_layers, n_heads = self.bounds.n_layers, self.bounds.n_heads
        layers = _index_list(layers, n_layers, "Layer", "this model's block list")
        targets = _index_list(targets, self.result.length, "Target token", "the tokenized text")
        heads = _index_list(heads, n_heads, "Head", "each attention layer")
        # One computation at a time writes into the result; weights need no gradient (less memory, faster).
        with self._lock, frozen_parameters(self.handle.model):
            for layer in layers:
                self._compute_layer(route, layer, targets, heads, name, cancel)

    def _compute_layer(self, route, layer, targets, heads, name, cancel) -> None:
        raw = raw_baseline(name)
        if name == raw:
            self._raw(route, layer, targets, heads, raw, cancel)
            return
        # ITB ratio variants: post-process the ITB columns (zero columns or attention weights as the guide).
        itb = self._raw(route, layer, targets, heads, raw, cancel)
        zero = self._raw(route, layer, targets, heads, "zero", cancel) if name == "itb_zero_ratio" else None
        weights = self.attention(layer) if name == "itb_map_ratio" else None
        cols = self.result.route(route, layer, name, create=True)
        for j in targets:
            for h in (heads if route == "att" else [None]):
                at = (j,) if h is None else (j, h)
                if cols.has(j, h):
                    continue
                column = itb.scores[at]
                if name == "itb_zero_ratio":
                    fixed = itb_zero_ratio(column, zero.scores[at], j)
                else:
                    fixed = itb_map_ratio(column, float(weights[h, j, j]), j)
                cols.scores[at] = fixed
                cols.expected[at], cols.error[at] = itb.expected[at], itb.error[at]  # column sums are kept


def lig(model, prompt, **options) -> LayerAttribution:
    """Layer-wise integrated gradients of `prompt` at every requested block (see DEFAULTS for the options).
    `prompt` is a string, chat messages or token ids, as every compute function's.

    granularity: "all" | "layer" (z->z) | "att" (z->u per head) | "mlp" (u->z), or a list of them.
    Returns a LayerAttribution; its `session` computes further columns on demand (LayerFlow uses it).
    """
    from tqdm.auto import tqdm

    session = LigSession(model, prompt, **options)
    opts = session.options
    heads = [opts["target_head"]] if opts["target_head"] is not None else None
    n_rows = len(opts["target_tokens"]) * len(opts["layers"])
    per_route = {"layer": 1, "mlp": 1, "att": 1 if heads else session.bounds.n_heads}
    factor = {"itb_zero_ratio": 2}
    total = sum(per_route[r] * n_rows * opts["n_steps"] * factor.get(opts[f"baseline_{r}"], 1) for r in opts["routes"])
    session.progress = tqdm(total=total, desc="LIG", unit="point", leave=False)
    try:
        for route in opts["routes"]:
            session.compute(route, opts["layers"], opts["target_tokens"], heads=heads)
    finally:
        session.progress.close()
        session.progress = None
    return session.result
