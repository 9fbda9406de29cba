"""Attribution methods. Importing this package registers them (see attrwidgets.core.registry)."""

from attrwidgets.core.methods import attention, gradients, integrated_gradients  # noqa: F401
