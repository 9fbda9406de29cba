"""LayerAttribution: what LIG computed, per route, baseline, layer and target column.

Orientation as everywhere in attrwidgets: rows are targets j, columns sources i. So z2z[l][j, i] is source
token i's contribution to target token j at block l; z2u[l][j, h, i] the same through head h; u2z[l][j, d]
hidden dimension d of u_j's contribution to z_next_j. Columns not computed yet are NaN: a live view fills
them on demand and nothing computed is ever dropped, including columns of other baselines.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attrwidgets.core import frames
from attrwidgets.core.files import write_text_atomic
from attrwidgets.core.lig.baselines import OPTION_OF_ROUTE
from attrwidgets.core.lig.lig_write import our_dict, save_bundle_of, to_upstream_dict
from attrwidgets.core.rendering import PageExport
from attrwidgets.core.tokens import Token
from attrwidgets.errors import AttrWidgetsError

FLAG_ERROR = 0.02  # the LIG authors' threshold; views flag columns above it


def head_slices(u: np.ndarray, n_heads: int) -> np.ndarray | None:
    """(..., D) -> (..., H): sums over each head's slice of the hidden dimensions (as upstream LIG splits
    u->z per head); None when D is not a multiple of H."""
    d = u.shape[-1]
    if n_heads <= 0 or d % n_heads:
        return None
    return u.reshape(*u.shape[:-1], n_heads, d // n_heads).sum(-1, dtype=np.float64)


@dataclass
class RouteColumns:
    """One route, one baseline, one layer. Shapes: layer (T, T) / (T,); att (T, H, T) / (T, H); mlp (T, D) / (T,)."""

    scores: np.ndarray
    expected: np.ndarray  # ||F(x) - F(x')||: what a column must sum to
    error: np.ndarray  # relative completeness error of each column

    @classmethod
    def empty(cls, route: str, length: int, n_heads: int, hidden: int) -> RouteColumns:
        if route == "layer":
            shapes = (length, length), (length,)
        elif route == "att":
            shapes = (length, n_heads, length), (length, n_heads)
        else:
            shapes = (length, hidden), (length,)
        nan = lambda shape: np.full(shape, np.nan, dtype=np.float32)
        return cls(nan(shapes[0]), nan(shapes[1]), nan(shapes[1]))

    def has(self, target: int, head: int | None = None) -> bool:
        value = self.expected[target] if head is None or self.expected.ndim == 1 else self.expected[target, head]
        return bool(np.all(np.isfinite(value)))


@dataclass
class LayerAttribution(PageExport):
    tokens: list[Token]
    n_layers: int
    n_heads: int
    hidden_size: int
    options: dict
    text: str = ""
    model_id: str = ""
    architecture: str = ""
    causal: bool = True
    columns: dict = field(default_factory=dict)  # (route, baseline, layer) -> RouteColumns
    attention: dict = field(default_factory=dict)  # layer -> (H, T, T) real attention weights, rows queries
    # the LigSession that computes further columns (aw.lig's result); None for a loaded one. Not saved.
    session: object = field(default=None, repr=False, compare=False)

    # -- access ------------------------------------------------------------------------------------
    @property
    def length(self) -> int:
        return len(self.tokens)

    @property
    def token_texts(self) -> list[str]:
        return [t.text for t in self.tokens]

    @property
    def layers(self) -> list[int]:
        return sorted({key[2] for key in self.columns})

    def baseline(self, route: str) -> str:
        if route not in OPTION_OF_ROUTE:
            raise AttrWidgetsError(f"Unknown route {route!r}: use one of {', '.join(OPTION_OF_ROUTE)}.")
        return self.options[OPTION_OF_ROUTE[route]]

    def route(self, route: str, layer: int, baseline: str | None = None, create: bool = False) -> RouteColumns | None:
        key = (route, baseline or self.baseline(route), layer)
        if key not in self.columns and create:
            self.columns[key] = RouteColumns.empty(route, self.length, self.n_heads, self.hidden_size)
        return self.columns.get(key)

    def _by_layer(self, route: str, part: str = "scores") -> dict[int, np.ndarray]:
        out = {}
        for (r, b, layer), cols in sorted(self.columns.items(), key=lambda kv: kv[0][2]):
            if r == route and b == self.baseline(route):
                out[layer] = getattr(cols, part)
        return out

    @property
    def z2z(self) -> dict[int, np.ndarray]:
        """layer -> (T, T), rows targets, columns sources."""
        return self._by_layer("layer")

    @property
    def z2u(self) -> dict[int, np.ndarray]:
        """layer -> (T, H, T): target, head, source."""
        return self._by_layer("att")

    @property
    def u2z(self) -> dict[int, np.ndarray]:
        """layer -> (T, D): target, hidden dimension of u_target."""
        return self._by_layer("mlp")

    @property
    def l2_total(self) -> dict[int, np.ndarray]:
        """layer -> (T,): ||z_next_j(u_j) - z_next_j(u'_j)||, what each u2z row sums to."""
        return self._by_layer("mlp", "expected")

    def completeness(self, route: str, layer: int) -> np.ndarray:
        """Relative completeness error of every column of a route at a layer (NaN: not computed)."""
        cols = self.route(route, layer)
        if cols is None:
            raise AttrWidgetsError(f"No {route!r} columns at layer {layer}: computed layers are {self.layers}.")
        return cols.error

    def max_completeness_error(self) -> float:
        errors = [c.error[np.isfinite(c.error)] for c in self.columns.values()]
        errors = [e for e in errors if e.size]
        return float(max(e.max() for e in errors)) if errors else float("nan")

    def adopt(self, old: LayerAttribution) -> None:
        """Columns computed before (a loaded or earlier result) join the session's result, so none is recomputed."""
        same = self.length == old.length and all(
            a.text == b.text and (a.id < 0 or b.id < 0 or a.id == b.id) for a, b in zip(self.tokens, old.tokens))
        sizes = lambda r: (r.n_layers, r.n_heads, r.hidden_size)
        if not same or sizes(self) != sizes(old):
            raise AttrWidgetsError(f"The result's {old.length} tokens or its model sizes (layers, heads, hidden) differ "
                                   f"from this model's ({self.length} tokens): compute it again with this model.")
        for key, cols in old.columns.items():
            mine = self.columns.get(key)
            if mine is None:
                self.columns[key] = RouteColumns(cols.scores.copy(), cols.expected.copy(), cols.error.copy())
            else:
                fill = ~np.isfinite(mine.expected) & np.isfinite(cols.expected)
                mine.scores[fill], mine.expected[fill], mine.error[fill] = (cols.scores[fill], cols.expected[fill],
                                                                            cols.error[fill])
        for layer, weights in old.attention.items():
            self.attention.setdefault(layer, weights)

    # -- composition ---------------------------------------------------------------------------------
    def mlp_per_head(self, layer: int) -> np.ndarray:
        """(T, H): u2z summed over each head's slice of the hidden dimensions (D = H * head_dim)."""
        slices = head_slices(self.u2z[layer], self.n_heads)
        if slices is None:
            raise AttrWidgetsError(f"Hidden size {self.hidden_size} is not a multiple of {self.n_heads} heads: "
                                   "no per-head MLP slices.")
        return slices

    def composed(self, layer: int) -> np.ndarray:
        """(T, T): composed[j, i] = sum_h z2u[j, h, i] * mlp_per_head[j, h], the ATT x MLP route."""
        if layer not in self.z2u or layer not in self.u2z:
            raise AttrWidgetsError(f"Composition at layer {layer} needs the 'att' and 'mlp' routes there.")
        return np.einsum("jhi,jh->ji", self.z2u[layer], self.mlp_per_head(layer))

    def l2_diagnostic(self, layer: int) -> dict[str, np.ndarray]:
        """Per target: Pearson r and L2 distance between the direct z->z column and the composed one."""
        direct, composed = self.z2z.get(layer), self.composed(layer)
        if direct is None:
            raise AttrWidgetsError(f"The L2 diagnostic at layer {layer} needs the 'layer' route there too.")
        pearson = np.full(self.length, np.nan, np.float32)
        distance = np.full(self.length, np.nan, np.float32)
        for j in range(self.length):
            a, b = direct[j], composed[j]
            if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
                continue
            distance[j] = np.linalg.norm(a - b)
            if a.std() > 0 and b.std() > 0:
                pearson[j] = np.corrcoef(a, b)[0, 1]
        return {"pearson": pearson, "l2": distance}

    def shares(self, route: str, layer: int, target: int, head: int | None = None) -> np.ndarray:
        """|IG_ij| / sum_i |IG_ij| over sources i for one target column (what the LayerFlow circles show)."""
        cols = self.route(route, layer)
        if cols is None or not cols.has(target, head):
            raise AttrWidgetsError(f"Column {target} of route {route!r} at layer {layer} is not computed yet.")
        column = cols.scores[target] if route != "att" else cols.scores[target, head]
        total = np.abs(column).sum()
        return np.abs(column) / total if total > 0 else np.zeros_like(column)

    def __repr__(self) -> str:
        routes = sorted({r for r, _, _ in self.columns})
        return (f"LayerAttribution({self.model_id!r}, {self.length} tokens, layers {self.layers}, routes {routes}, "
                f"max completeness error {self.max_completeness_error():.2%})")

    # -- files ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Our schema (`schema`, `version`): what save() writes, arrays as nested lists. The upstream LIG
        package's layout is to_lig_json()."""
        return our_dict(self)

    def to_lig_json(self, path=None) -> dict:
        """The upstream LIG package's JSON layout (matrix[i][j] = source i -> target j), with extra completeness
        keys (core/lig/lig_json.py); written atomically to `path` when given."""
        document = to_upstream_dict(self)
        if path is not None:
            write_text_atomic(path, json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False))
        return document

    def to_dataframe(self):
        """Long format: every computed score of every route, baseline and layer (core/frames.py)."""
        return frames.dataframe(frames.lig_table(self))

    def to_json(self, path):
        """The old name of to_lig_json(path); returns the path, as it did."""
        warnings.warn("LayerAttribution.to_json() is renamed to_lig_json(); the old name will be removed.",
                      DeprecationWarning, stacklevel=2)
        self.to_lig_json(path)
        return Path(path)

    def save(self, path):
        return save_bundle_of(self, path)
