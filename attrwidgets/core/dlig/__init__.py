"""DLIG: layer integrated gradients during generation (autoregressive and masked-diffusion); METHODS.md section 2."""

from attrwidgets.core.dlig.diffusion import dlig
from attrwidgets.core.dlig.layer_ig import layer_ig
from attrwidgets.core.dlig.result import DiffusionAttribution, load_diffusion

__all__ = ["DiffusionAttribution", "dlig", "layer_ig", "load_diffusion"]
