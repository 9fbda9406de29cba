"""attrwidgets: attribution for transformer language models, as live Jupyter widgets.

    import attrwidgets as aw
    model = aw.load_model()                       # SmolLM2-135M-Instruct, embedded
    result = aw.attribute(model, "The capital of France is", method="integrated_gradients")
    aw.TokenMatrix(result)                        # or aw.TokenMatrix(model=model, prompt=..., method=...)
"""

from attrwidgets.core.adapters import describe_boundaries
from attrwidgets.core.dataset.result import DatasetResult
from attrwidgets.core.dataset.run import attribute_dataset
from attrwidgets.core.depass import (
    Decomposition,
    HeadContributions,
    depass,
    load_decomposition,
    load_head_contributions,
    residual_state,
)
from attrwidgets.core.depass.heads import head_contributions
from attrwidgets.core.dlig import DiffusionAttribution, dlig, load_diffusion
from attrwidgets.core.estimate import Estimate, estimate
from attrwidgets.core.lig import LayerAttribution, lig, load_layer_attribution, load_lig_json
from attrwidgets.core.rendering import register_page_writer
from attrwidgets.core.source import Source
from attrwidgets.core.token.catalog import list_methods
from attrwidgets.core.token.result import Attribution
from attrwidgets.core.token.session import AttributionSession, attribute, layer_ig
from attrwidgets.errors import AttrWidgetsError, NonFiniteGradientError
from attrwidgets.models import ModelHandle, load_model

__version__ = "0.1.0"

__all__ = [
    "AttrWidgetsError",
    "Attribution",
    "AttributionSession",
    "DatasetResult",
    "Decomposition",
    "DiffusionAttribution",
    "DiffusionTimeline",
    "Estimate",
    "Explorer",
    "Graph",
    "GraphView",
    "HeadContributions",
    "HeadGrid",
    "LayerAttribution",
    "LayerFlow",
    "ModelHandle",
    "NonFiniteGradientError",
    "Source",
    "TokenMatrix",
    "Transcoder",
    "attribute",
    "attribute_dataset",
    "attribution_graph",
    "depass",
    "describe_boundaries",
    "dlig",
    "estimate",
    "explore",
    "head_contributions",
    "layer_ig",
    "lig",
    "link",
    "list_methods",
    "load",
    "load_decomposition",
    "load_diffusion",
    "load_graph",
    "load_head_contributions",
    "load_layer_attribution",
    "load_lig_json",
    "load_model",
    "load_result",
    "load_transcoder",
    "node_influence",
    "residual_state",
    "to_html",
    "train_transcoder",
]


def load_result(path):
    """Read a saved Attribution (or TokenLens JSON); schema-checked, never unpickled."""
    from attrwidgets.core.token.result_io import load_result as _load

    return _load(path)


def _write_page(result, path=None, **view):
    # result.to_html() (core/rendering.py) lands here: the pages are made by the views, above the core
    from attrwidgets.export_html import to_html as write

    return write(result, path, **view)


register_page_writer(_write_page)


# Attribution graphs (attrwidgets/core/graph/) and aw.load load on first use: name -> module.
_GRAPH_API = {
    "Graph": "attrwidgets.core.graph.graph",
    "GraphView": "attrwidgets.widgets.graph_view",
    "Transcoder": "attrwidgets.core.graph.transcoder",
    "attribution_graph": "attrwidgets.core.graph.attribution",
    "load": "attrwidgets.core.loading",
    "load_graph": "attrwidgets.core.graph.attribution",
    "load_transcoder": "attrwidgets.core.graph.checkpoint",
    "node_influence": "attrwidgets.core.graph.influence",
    "train_transcoder": "attrwidgets.core.graph.train",
}


def __getattr__(name):
    # Widgets import anywidget; keep `import attrwidgets` light for scripts and the CLI.
    if name in _GRAPH_API:
        import importlib

        return getattr(importlib.import_module(_GRAPH_API[name]), name)
    if name == "TokenMatrix":
        from attrwidgets.widgets.token_matrix import TokenMatrix

        return TokenMatrix
    if name == "HeadGrid":
        from attrwidgets.widgets.head_grid import HeadGrid

        return HeadGrid
    if name == "LayerFlow":
        from attrwidgets.widgets.layer_flow import LayerFlow

        return LayerFlow
    if name == "DiffusionTimeline":
        from attrwidgets.widgets.diffusion_timeline import DiffusionTimeline

        return DiffusionTimeline
    if name in ("explore", "Explorer"):
        from attrwidgets.widgets import explorer

        return getattr(explorer, name)
    if name == "link":
        from attrwidgets.widgets.linking import link

        return link
    if name == "to_html":
        from attrwidgets.export_html import to_html

        return to_html
    raise AttributeError(f"module 'attrwidgets' has no attribute {name!r}")
