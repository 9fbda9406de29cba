"""DePass: an exact decomposed forward pass (docs/methods/depass.md) and per-head contributions."""

from attrwidgets.core.depass.decompose import LEVELS, depass, residual_state
from attrwidgets.core.depass.result import (
                                            Decomposition,
                                            HeadContributions,
                                            load_decomposition,
                                            load_head_contributions,
)
from attrwidgets.core.depass.rules import MLP_RULES

__all__ = ["LEVELS", "MLP_RULES", "Decomposition", "HeadContributions", "depass", "load_decomposition",
           "load_head_contributions", "residual_state"]
