"""Widgets: one anywidget class per view (the only layer that imports anywidget/ipywidgets)."""

from attrwidgets.widgets.head_grid import HeadGrid
from attrwidgets.widgets.serialization import Tensor, checksum, deserialize_tensor, serialize_tensor
from attrwidgets.widgets.token_matrix import TokenMatrix

__all__ = ["HeadGrid", "Tensor", "TokenMatrix", "checksum", "deserialize_tensor", "serialize_tensor"]
