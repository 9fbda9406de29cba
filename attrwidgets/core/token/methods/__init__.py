"""Token attribution methods (docs/methods/token.md). Importing this package registers them all
(core/token/registry.py): attention, saliency, input x gradient, integrated gradients, layer IG."""

from attrwidgets.core.token.methods import attention, gradients, integrated_gradients, layer_ig  # noqa: F401
