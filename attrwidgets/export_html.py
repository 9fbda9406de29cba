"""to_html(): a standalone page showing the same view (TokenMatrix, HeadGrid, LayerFlow or DiffusionTimeline), without
a kernel or a network.

The page itself (the inlined bundle, base64 tensors, an in-page model standing in for anywidget's, escaped
JSON blocks) is widgets/html_page.py; this module gathers each view's state. Clicks still change the selection
locally. A view whose selections need the kernel (HeadGrid: another target's contributions, a head's full
pattern; LayerFlow: another target, route, baseline or head) exports `standalone(model, data)`, which answers
from data embedded in the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import traitlets

from attrwidgets.core.depass.result import Decomposition
from attrwidgets.core.token.result import Attribution
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.widgets.html_page import (
    WIDGET_TRAITS,
    base64_buffers,
    require_bundle,
    write_page,
)
from attrwidgets.widgets.serialization import serialize_tensor

VIEW_STATE = ("selected_target", "normalization", "sign_mode", "hide_special")  # TokenMatrix
HEAD_GRID_VIEW_STATE = ("selected_target", "selected_position", "selected_layer", "selected_head", "statistic",
                        "mode")
LAYER_FLOW_VIEW_STATE = ("selected_target", "selected_position", "selected_layer", "selected_head", "sum_heads", "route",
                         "baseline_layer", "baseline_att", "baseline_mlp", "threshold", "layers", "target_positions")
DIFFUSION_VIEW_STATE = ("selected_target", "selected_position", "selected_step", "score_kind", "heatmap",
                        "normalization")
# The full (L, H, T, T) patterns are embedded (float16) up to this many values, 32 MB; past it, the page keeps
# the statistics (one attention row per target) and says why a head's pattern is missing.
EMBED_ATTENTION_MAX = 16_000_000

def _tensor(value: Any, dtype: str = "float32") -> dict | None:
    return base64_buffers(serialize_tensor(value, dtype))


def page_state(result: Attribution, view: dict | None = None) -> dict:
    """The TokenMatrix traits for `result`, tensors as base64 (js/types.ts Model)."""
    if not isinstance(result, Attribution):
        raise AttrWidgetsError(
            f"to_html expects an Attribution or a TokenMatrix (or a token-level Decomposition, a HeadContributions or a HeadGrid, a "
            f"LayerAttribution or a LayerFlow, a DiffusionAttribution or a DiffusionTimeline), got "
            f"{type(result).__name__}."
        )
    state = {
        "tokens": [t.to_dict() for t in result.tokens],
        "target_positions": [int(p) for p in result.target_positions],
        "scores": _tensor(result.scores),
        "target_prob": _tensor(result.target_prob),
        "target_entropy": _tensor(result.target_entropy),
        "completeness_error": _tensor(result.completeness_error),
        "selected_target": 0,
        "method": result.method,
        "methods": [result.method],
        "n_steps": int(result.options.get("n_steps", 0) or 0),
        "normalization": "row",
        "sign_mode": "signed",
        "hide_special": False,
        "busy": False,
        "error": "",
        "llm_id": result.model_id,
    }
    state.update(view or {})
    return state


class PagePart(NamedTuple):
    """One view's page: its bundle's stem, its traits, the data its standalone() answers from, a title, a
    description line."""

    stem: str
    state: dict
    extra: dict | None
    title: str
    meta: str


def to_html(result: Any, path: str | Path | None = None, *, title: str | None = None, **view: Any) -> str:
    """A standalone HTML page of the view of `result`: an Attribution or a TokenMatrix (the TokenMatrix view),
    a HeadContributions or a HeadGrid (the HeadGrid view), a LayerAttribution or a LayerFlow (the LayerFlow
    view, with every column computed so far), a DiffusionAttribution or a DiffusionTimeline (every row), a Graph
    or a GraphView (the pruned graph: widgets/graph_html.py), an Explorer (every part, linked in the page:
    export_explorer.py).

    A token-level Decomposition shows in the TokenMatrix view (Decomposition.as_attribution).

    view (TokenMatrix): initial selected_target, normalization ("row"|"global"), sign_mode
    ("signed"|"absolute"), hide_special. view (HeadGrid): selected_target, selected_position, selected_layer,
    selected_head, statistic, mode. view (LayerFlow): LAYER_FLOW_VIEW_STATE; (DiffusionTimeline):
    DIFFUSION_VIEW_STATE. A widget passes its own. Writes
    the page to `path` when given; returns it.
    """
    if _is_explorer(result):
        from attrwidgets.export_explorer import explorer_to_html

        return explorer_to_html(result, path, title=title, view_page=view_page, **view)
    part = view_page(result, view)
    return write_page(part.stem, part.state, part.extra, title or part.title, part.meta, path)


def view_page(result: Any, view: dict) -> PagePart:
    """The page of one view of `result` (to_html says which), `view` its initial state."""
    if type(result).__name__ in ("Graph", "GraphView"):
        from attrwidgets.widgets.graph_html import graph_page

        state, meta = graph_page(result, view)
        return PagePart("graph_view", state, None, "attrwidgets: attribution graph", meta)
    if _is_diffusion_view(result):
        state, meta = _diffusion_page(result, view)
        return PagePart("diffusion_timeline", state, None, "attrwidgets: diffusion timeline (DLIG)", meta)
    if _is_flow_view(result):
        state, extra, meta = _layer_flow_page(result, view)
        return PagePart("layer_flow", state, extra, "attrwidgets: layer flow (LIG)", meta)
    if _is_head_view(result):
        state, extra, meta = _head_grid_page(result, view)
        mode = "DePass" if state["mode"] == "depass" else "attention"
        return PagePart("head_grid", state, extra, f"attrwidgets: attention heads ({mode})", meta)
    unknown = sorted(set(view) - set(VIEW_STATE))
    if unknown:
        raise AttrWidgetsError(f"to_html got unknown option(s) {unknown}; it accepts {list(VIEW_STATE)}.")
    if isinstance(result, Decomposition):  # its view is the TokenMatrix (core/depass/token_view.py)
        result = result.as_attribution()
    if hasattr(result, "result") and hasattr(result, "selected_target"):  # a TokenMatrix widget
        view = {**{k: getattr(result, k) for k in VIEW_STATE}, **view}
        result = result.result
    require_bundle("token_matrix")
    state = page_state(result, view)
    n = len(state["target_positions"])
    if n and not -1 <= int(state["selected_target"]) < n:
        raise AttrWidgetsError(f"selected_target must be -1 (none) or in [0, {n}), got {state['selected_target']}.")
    meta = (
        f"model: {result.model_id or 'unknown'}   method: {result.method}   {result.timestamp}\n"
        f"prompt: {result.prompt}"
    )
    return PagePart("token_matrix", state, None, f"attrwidgets: {result.method} attribution", meta)


def _is_explorer(obj: Any) -> bool:
    from attrwidgets.widgets.explorer import Explorer

    return isinstance(obj, Explorer)


def _is_head_view(obj: Any) -> bool:
    from attrwidgets.core.depass.result import HeadContributions
    from attrwidgets.widgets.head_grid import HeadGrid

    return isinstance(obj, (HeadContributions, HeadGrid))


def _head_grid_page(view_or_result: Any, view: dict) -> tuple[dict, dict, str]:
    """HeadGrid traits (as the widget would send them), and what the page's standalone() needs to answer
    selections without a kernel: every target row computed so far, and the patterns when they fit."""
    from attrwidgets.widgets.head_grid import HeadGrid, finite_or_none

    unknown = sorted(set(view) - set(HEAD_GRID_VIEW_STATE))
    if unknown:
        raise AttrWidgetsError(
            f"to_html got unknown option(s) {unknown}; for a HeadGrid it accepts {list(HEAD_GRID_VIEW_STATE)}."
        )
    require_bundle("head_grid")
    own = not isinstance(view_or_result, HeadGrid)
    try:
        grid = HeadGrid(view_or_result, **view) if own else view_or_result
    except traitlets.TraitError as exc:
        raise AttrWidgetsError(str(exc)) from exc
    try:
        if not own:
            view = {**{k: getattr(grid, k) for k in HEAD_GRID_VIEW_STATE}, **view}
            view = grid.check_view(view)
        names = [t for t in HeadGrid.public_traits() if t not in WIDGET_TRAITS]
        wire = grid.get_state(names)
        state = {**wire, **view, "busy": False, "error": ""}
        attention = grid.attention
        queries = list(grid.query_positions)
        fits = attention is not None and attention.size <= EMBED_ATTENTION_MAX
        extra = {
            "rows": {str(r): {"contributions": serialize_tensor(res.contributions),
                              "per_source": serialize_tensor(res.per_source),
                              "logit": finite_or_none(res.logit),
                              "completeness_error": finite_or_none(res.completeness_error)}
                     for r, res in grid.computed_rows().items()},
            "attention": serialize_tensor(attention, "float16") if fits else None,
            "query_attention": None if attention is None else serialize_tensor(
                attention[:, :, queries, :].transpose(2, 0, 1, 3), "float16"),
            "note": "" if fits else (
                f"This page does not embed the full attention patterns ({attention.size:,} values is over "
                f"{EMBED_ATTENTION_MAX:,}); open the head in a notebook to see its pattern."
            ),
        }
        n_rows = len(extra["rows"])
        meta = (
            f"model: {grid.llm_id or 'unknown'}   mode: {grid.mode}   {grid.n_layers} layers x {grid.n_heads} "
            f"heads   targets computed: {n_rows} of {len(grid.target_positions)}\nprompt: {grid.prompt_text}"
        )
    finally:
        if own:
            grid.close()
    return state, extra, meta


def _is_flow_view(obj: Any) -> bool:
    from attrwidgets.core.lig.result import LayerAttribution
    from attrwidgets.widgets.layer_flow import LayerFlow

    return isinstance(obj, (LayerAttribution, LayerFlow))


def _layer_flow_page(view_or_result: Any, view: dict) -> tuple[dict, dict, str]:
    """LayerFlow traits for the view state, and every computed column of the result (only the computed target
    columns of each route, baseline and layer), for the page's standalone() to answer any selection."""
    from attrwidgets.widgets.flow_rows import PARTS, per_head
    from attrwidgets.widgets.layer_flow import LayerFlow

    unknown = sorted(set(view) - set(LAYER_FLOW_VIEW_STATE))
    if unknown:
        raise AttrWidgetsError(
            f"to_html got unknown option(s) {unknown}; for a LayerFlow it accepts {list(LAYER_FLOW_VIEW_STATE)}."
        )
    require_bundle("layer_flow")
    if isinstance(view_or_result, LayerFlow):
        view = view_or_result.check_view({**{k: getattr(view_or_result, k) for k in LAYER_FLOW_VIEW_STATE}, **view})
        result = view_or_result.result
    else:
        result = view_or_result
    try:
        flow = LayerFlow(result, live=False, **view)  # never computes: the page shows what exists
    except traitlets.TraitError as exc:
        raise AttrWidgetsError(str(exc)) from exc
    try:
        names = [t for t in LayerFlow.public_traits() if t not in WIDGET_TRAITS]
        state = {**flow.get_state(names), "busy": False, "error": "", "can_compute": False}
        columns = []
        for (route, baseline, layer), cols in sorted(result.columns.items()):
            done = np.isfinite(cols.expected).reshape(result.length, -1).any(axis=1)
            targets = [int(j) for j in np.flatnonzero(done)]
            if not targets:
                continue
            entry = {"route": route, "baseline": baseline, "layer": int(layer), "targets": targets,
                     "expected": serialize_tensor(cols.expected[targets]), "error": serialize_tensor(cols.error[targets]),
                     "scores": None, "total": None, "per_head": None}
            if route == "mlp":
                entry["total"] = serialize_tensor(np.sum(cols.scores[targets], axis=-1, dtype=np.float64))
                entry["per_head"] = serialize_tensor(per_head(cols.scores[targets], result.n_heads))
            else:
                entry["scores"] = serialize_tensor(cols.scores[targets])
            columns.append(entry)
        shown = [r for r in PARTS if all(any(k[0] == p for k in result.columns) for p in PARTS[r])]
        opts = result.options
        meta = (
            f"model: {result.model_id or 'unknown'}   {result.n_layers} layers x {result.n_heads} heads   "
            f"routes computed: {', '.join(shown) or 'none'}   n_steps: {opts.get('n_steps')}   "
            f"quadrature: {opts.get('quadrature')}\ntext: {result.text}"
        )
    finally:
        flow.close()
    return state, {"columns": columns}, meta


def _is_diffusion_view(obj: Any) -> bool:
    from attrwidgets.core.dlig.result import DiffusionAttribution
    from attrwidgets.widgets.diffusion_timeline import DiffusionTimeline

    return isinstance(obj, (DiffusionAttribution, DiffusionTimeline))


def _diffusion_page(view_or_result: Any, view: dict) -> tuple[dict, str]:
    """DiffusionTimeline traits: every row is in them, so the page answers any step or token by itself."""
    from attrwidgets.widgets.diffusion_timeline import DiffusionTimeline

    unknown = sorted(set(view) - set(DIFFUSION_VIEW_STATE))
    if unknown:
        raise AttrWidgetsError(f"to_html got unknown option(s) {unknown}; for a DiffusionTimeline it accepts "
                               f"{list(DIFFUSION_VIEW_STATE)}.")
    require_bundle("diffusion_timeline")
    result = view_or_result
    if isinstance(view_or_result, DiffusionTimeline):
        result = view_or_result.result
        if result is None:
            raise AttrWidgetsError("This DiffusionTimeline has nothing to export yet: wait() for its first run.")
        own = {k: getattr(view_or_result, k) for k in DIFFUSION_VIEW_STATE}
        if "selected_step" in view and "selected_target" not in view:
            del own["selected_target"]  # the step asked for brings its own first row
        view = view_or_result.check_view({**own, **view})
    try:
        timeline = DiffusionTimeline(result, **view)  # static: the page shows this result
    except traitlets.TraitError as exc:
        raise AttrWidgetsError(str(exc)) from exc
    try:
        names = [t for t in DiffusionTimeline.public_traits() if t not in WIDGET_TRAITS]
        state = {**timeline.get_state(names), "busy": False, "error": "", "can_compute": False}
    finally:
        timeline.close()
    o = result.options
    meta = (f"model: {result.model_id or 'unknown'}   layer: {result.layer or '?'}   {result.n_denoising_steps} denoising steps, "
            f"{len(result.row_step)} unmasked tokens   gen_length: {o.get('gen_length')}   remasking: "
            f"{o.get('remasking')}   IG n_steps: {o.get('n_steps')}\nprompt: {result.prompt}")
    return state, meta
