"""DLIG: layer integrated gradients during generation (autoregressive and masked-diffusion); docs/methods/dlig.md."""

from attrwidgets.core.dlig.diffusion import dlig
from attrwidgets.core.dlig.result import DiffusionAttribution, load_diffusion

__all__ = ["DiffusionAttribution", "dlig", "load_diffusion"]  # layer_ig (a token method): core/token/session.py
