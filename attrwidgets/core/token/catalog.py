"""Every built-in token attribution method, registered: import get_method and list_methods from here.

Importing a method's module registers it (core/token/registry.py); importing core/token/methods/ imports
them all, so the registry never has to import its methods (which import it).
"""

from __future__ import annotations

import attrwidgets.core.token.methods  # noqa: F401 - registers every built-in method
from attrwidgets.core.token.registry import MethodSpec, get_method, list_methods, resolve_options

__all__ = ["MethodSpec", "get_method", "list_methods", "resolve_options"]
