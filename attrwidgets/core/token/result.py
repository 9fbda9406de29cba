"""Attribution: the result object every method returns and every view/export reads.

Matrices are stored rows = targets, columns = sources (docs/methods/token.md): scores[i, p] is how much source
position p contributed to target i (the i-th generated or forced token). Rows not computed yet (a live
widget fills them lazily) are NaN; computed rows are finite and zero at p >= target_positions[i].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from attrwidgets.core.rendering import PageExport
from attrwidgets.core.token.inseq_write import to_inseq
from attrwidgets.core.token.result_write import (
    attribution_to_dict,
    save_result,
    save_tokenlens,
    to_csv,
    to_dataframe,
    to_tokenlens,
)
from attrwidgets.core.tokens import Token
from attrwidgets.errors import AttrWidgetsError


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Attribution(PageExport):
    tokens: list[Token]  # every position: prompt, then generated tokens
    target_positions: list[int]  # index into tokens of each target; targets are explained rows
    scores: np.ndarray  # (n_targets, n_positions) float32; rows targets, columns sources; NaN = not computed
    method: str
    options: dict = field(default_factory=dict)  # JSON-able method options actually used (n_steps, baseline...)
    model_id: str = ""
    timestamp: str = field(default_factory=_now_iso)
    prompt: str = ""  # the text as given (string prompt) or the rendered chat template
    target_prob: np.ndarray | None = None  # (n_targets,) p(y_i | prefix)
    target_entropy: np.ndarray | None = None  # (n_targets,) entropy (nats) of the next-token distribution
    completeness_error: np.ndarray | None = None  # (n_targets,) IG only: |sum IG - (f(x)-f(x'))| / |f(x)-f(x')|
    per_dim: np.ndarray | None = None  # (n_targets, n_positions, D) signed per-dimension scores, when asked
    attention: np.ndarray | None = None  # (n_targets, L, H, n_positions) attention method only
    signed_scores: np.ndarray | None = None  # (n_targets, n_positions) signed sum over D when scores are L2 norms

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float32)
        n_t, n_p = len(self.target_positions), len(self.tokens)
        if self.scores.shape != (n_t, n_p):
            raise AttrWidgetsError(
                f"scores has shape {self.scores.shape} but there are {n_t} targets and {n_p} tokens: "
                "scores must be (n_targets, n_positions), rows targets, columns sources."
            )
        for name in ("target_prob", "target_entropy", "completeness_error"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float32)
                if value.shape != (n_t,):
                    raise AttrWidgetsError(f"{name} must have one value per target ({n_t}), got {value.shape}.")
                setattr(self, name, value)

    # -- shape helpers ---------------------------------------------------------------------------
    @property
    def n_targets(self) -> int:
        return len(self.target_positions)

    @property
    def n_positions(self) -> int:
        return len(self.tokens)

    @property
    def targets(self) -> list[Token]:
        return [self.tokens[p] for p in self.target_positions]

    @property
    def computed_rows(self) -> np.ndarray:
        """Boolean (n_targets,): which rows hold computed scores."""
        return ~np.isnan(self.scores).all(axis=1)

    @property
    def max_completeness_error(self) -> float | None:
        if self.completeness_error is None:
            return None
        finite = self.completeness_error[np.isfinite(self.completeness_error)]
        return float(finite.max()) if finite.size else None

    def __repr__(self) -> str:
        gen = "".join(t.clean for t in self.targets)
        err = self.max_completeness_error
        err_text = f", completeness_error<={err:.1%}" if err is not None else ""
        return (
            f"Attribution(method={self.method!r}, model={self.model_id!r}, {self.n_positions} positions, "
            f"{self.n_targets} targets {gen!r}{err_text})"
        )

    # -- persistence and export: implemented in result_io / inseq_write / words ---------------------
    def to_dict(self) -> dict:
        """Our schema (`schema`, `version`): every field, arrays as nested lists, null where not computed."""
        return attribution_to_dict(self)

    def save(self, path) -> Path:
        """attrwidgets JSON, written atomically; aw.load_result reads it. Returns the path."""
        return save_result(self, path)

    def to_dataframe(self):
        return to_dataframe(self)

    def to_csv(self, path, *, raw: bool = False):
        """Long-format CSV; formula-like token text neutralised unless raw=True (result_write.to_csv)."""
        return to_csv(self, path, raw=raw)

    def to_tokenlens(self, path=None) -> dict:
        """TokenLens's JSON layout (its ui/src/data/ files); written atomically to `path` when given."""
        if path is not None:
            save_tokenlens(self, path)
        return to_tokenlens(self)

    def to_inseq(self, path=None) -> dict:
        """Inseq's FeatureAttributionOutput JSON (inseq_write.to_inseq): the dict, written to `path` when given
        (gzip for a .gz name); inseq.FeatureAttributionOutput.load and aw.load both read the file."""
        return to_inseq(self, path)

    def aggregate_words(self) -> Attribution:
        from attrwidgets.core.token.words import aggregate_words

        return aggregate_words(self)
