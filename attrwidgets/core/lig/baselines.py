"""LIG baselines (the upstream release's names and meanings) and the ITB self-share post-processing.

ITB ("self_input_token") is target-specific: for target j every source position gets z_j, so the
self-term (i = j) has zero input difference and reads 0. The two ratio variants re-estimate it from the
zero baseline (itb_zero_ratio) or from the attention weight a_jj (itb_map_ratio), then rescale the column
so its sum (the ITB completeness anchor) is unchanged. Worked examples in docs/methods/lig.md.
"""

from __future__ import annotations

import numpy as np

from attrwidgets.errors import AttrWidgetsError

ROUTES = ("layer", "att", "mlp")  # z->z, z->u, u->z
ROUTE_ALIASES = {"z2z": "layer", "z2u": "att", "u2z": "mlp"}
BASELINES = {
    "layer": ("zero", "self_input_token", "itb_zero_ratio"),
    "att": ("zero", "self_input_token", "itb_zero_ratio", "itb_map_ratio"),
    "mlp": ("zero", "att_itb_a0"),
}
OPTION_OF_ROUTE = {"layer": "baseline_layer", "att": "baseline_att", "mlp": "baseline_mlp"}
_EPS = 1e-8


def resolve_granularity(granularity) -> list[str]:
    """'all' | a route | a list of routes -> routes in canonical order ('att', 'mlp', 'layer' or z2u...)."""
    if isinstance(granularity, str):
        granularity = list(ROUTES) if granularity == "all" else [granularity]
    if not isinstance(granularity, (list, tuple)) or not granularity:
        raise AttrWidgetsError("granularity must be 'all', one of 'layer', 'att', 'mlp', or a list of them.")
    routes = []
    for g in granularity:
        route = ROUTE_ALIASES.get(g, g)
        if route not in ROUTES:
            raise AttrWidgetsError(
                f"Unknown granularity {g!r}: use 'all' or any of 'layer' (z->z), 'att' (z->u per head), "
                "'mlp' (u->z), as a string or a list."
            )
        if route not in routes:
            routes.append(route)
    return [r for r in ROUTES if r in routes]


def check_baseline(route: str, name) -> str:
    valid = BASELINES[route]
    if name not in valid:
        hint = " (att_itb_a0 is the MLP input the ITB baseline produces)" if route == "mlp" else ""
        raise AttrWidgetsError(
            f"Unknown {OPTION_OF_ROUTE[route]} {name!r}: use one of {', '.join(valid)}{hint}."
        )
    return name


def raw_baseline(name: str) -> str:
    """The baseline actually integrated from: the ratio variants post-process the ITB run."""
    return "self_input_token" if name in ("itb_zero_ratio", "itb_map_ratio") else name


def _rescaled(itb: np.ndarray, j: int, self_estimate: float) -> np.ndarray:
    provisional = itb.copy()
    provisional[j] = self_estimate
    anchor, total = float(itb.sum()), float(provisional.sum())
    gamma = 1.0 if abs(total) <= _EPS else anchor / total
    return provisional * gamma


def itb_zero_ratio(itb_col, zero_col, j: int) -> np.ndarray:
    """Self share from the zero baseline's column: est = zero_j * sum_{i!=j} itb / sum_{i!=j} zero."""
    itb, zero = np.asarray(itb_col, np.float64), np.asarray(zero_col, np.float64)
    other_itb, other_zero = itb.sum() - itb[j], zero.sum() - zero[j]
    estimate = zero[j] * other_itb / other_zero if abs(other_zero) > _EPS else 0.0
    return _rescaled(itb, j, float(estimate))


def itb_map_ratio(itb_col, a_jj: float, j: int) -> np.ndarray:
    """Self share from the attention weight: est = sum_{i!=j} itb * a_jj / (1 - a_jj)."""
    itb = np.asarray(itb_col, np.float64)
    denom = 1.0 - float(a_jj)
    ratio = float(a_jj) / denom if abs(denom) > _EPS else 0.0
    return _rescaled(itb, j, float((itb.sum() - itb[j]) * ratio))
