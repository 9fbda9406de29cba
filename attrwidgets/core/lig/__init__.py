"""LIG: layer-wise integrated gradients at module boundaries (z->z, z->u per head, u->z); docs/methods/lig.md."""

from attrwidgets.core.lig.compute import LigSession, lig
from attrwidgets.core.lig.lig_json import load_layer_attribution, load_lig_json
from attrwidgets.core.lig.result import LayerAttribution

__all__ = ["LayerAttribution", "LigSession", "lig", "load_layer_attribution", "load_lig_json"]
