"""DiffusionAttribution: layer IG at every denoising step of a masked-diffusion LM.

One row per unmasked token, in unmasking order: the step that unmasked it, its position and id; its
attribution over ALL positions of the sequence as it stood at that step (the model is bidirectional, so
there is no causal zero). `states[s]` is the sequence entering step s (mask ids where still masked);
`states[-1]` is the final sequence. Saved as one JSON file (no pickle); `to_csv` keys scores by position.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attrwidgets.core import frames
from attrwidgets.core.bundle_io import json_array, read_json_file, schema_version
from attrwidgets.core.files import csv_cell, file_reader, open_text_atomic, write_text_atomic
from attrwidgets.core.rendering import PageExport
from attrwidgets.core.tokens import Token
from attrwidgets.errors import AttrWidgetsError, renamed_attribute

SCHEMA = "attrwidgets.diffusion_attribution/1"


@dataclass
class DiffusionAttribution(PageExport):
    tokens: list[Token]  # the final sequence: prompt, then the generated positions
    n_prompt: int
    mask_token_id: int
    states: np.ndarray  # (n_denoising_steps + 1, T) int64 token ids entering each step; the last row is the final sequence
    row_step: np.ndarray  # (n_rows,) the step that unmasked each row's token
    row_position: np.ndarray  # (n_rows,)
    row_token: np.ndarray  # (n_rows,) the unmasked token's id
    scores: np.ndarray  # (n_rows, T) L2 norm over D of each position's IG
    signed_scores: np.ndarray  # (n_rows, T) signed sum over D
    completeness_error: np.ndarray  # (n_rows,) relative
    layer: str = ""
    options: dict = field(default_factory=dict)
    model_id: str = ""
    prompt: str = ""
    mask_text: str = "[MASK]"
    per_dim: np.ndarray | None = None  # (n_rows, T, D) on request
    target_value: np.ndarray | None = None  # (n_rows,) f(h) at the step, and f(h') below
    baseline_value: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.states = np.asarray(self.states, dtype=np.int64)
        n, t = len(self.row_step), len(self.tokens)
        for name in ("scores", "signed_scores"):
            value = np.asarray(getattr(self, name), dtype=np.float32)
            if value.shape != (n, t):
                raise AttrWidgetsError(f"{name} must be (n_rows, T) = ({n}, {t}), got {value.shape}.")
            setattr(self, name, value)
        if self.states.ndim != 2 or self.states.shape[1] != t:
            raise AttrWidgetsError(f"states must be (n_denoising_steps + 1, T={t}), got {self.states.shape}.")

    @property
    def n_denoising_steps(self) -> int:
        return int(self.states.shape[0] - 1)

    n_steps = renamed_attribute("n_steps", "n_denoising_steps")  # `n_steps` is the IG path's points elsewhere

    @property
    def length(self) -> int:
        return len(self.tokens)

    def masked(self, step: int) -> np.ndarray:
        """(T,) bool: positions still masked entering `step` (step = n_denoising_steps: after the last one)."""
        return self.states[step] == self.mask_token_id

    def rows_at(self, step: int) -> list[int]:
        return [int(r) for r in np.nonzero(self.row_step == step)[0]]

    def step_heatmap(self) -> np.ndarray:
        """(n_steps, T): for each step, the sum over the rows it unmasked (NaN for a step that unmasked none)."""
        out = np.full((self.n_denoising_steps, self.length), np.nan, np.float32)
        for s in range(self.n_denoising_steps):
            rows = self.rows_at(s)
            if rows:
                out[s] = self.scores[rows].sum(0)
        return out

    def __repr__(self) -> str:
        return (f"DiffusionAttribution({self.model_id!r}, layer {self.layer!r}, {self.n_denoising_steps} denoising steps, "
                f"{len(self.row_step)} unmasked tokens, max completeness error "
                f"{float(np.nanmax(self.completeness_error)) if len(self.row_step) else float('nan'):.2%})")

    # -- files ----------------------------------------------------------------------------------------
    def to_csv(self, path, *, raw: bool = False) -> Path:
        """One row per (step, unmasked token): the prompt, the token and its position, then the score of every
        position keyed by POSITION (pos_0, pos_1, ...), so a repeated token never collides with another.
        Formula-like text gets a leading apostrophe unless raw=True (files.csv_cell). Written atomically."""
        header = ["step", "position", "token_id", "token", "completeness_error", "prompt", "layer"]
        header += [f"pos_{p}" for p in range(self.length)]
        header += [f"token_{p}" for p in range(self.length)]
        with open_text_atomic(path) as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for r in range(len(self.row_step)):
                p = int(self.row_position[r])
                writer.writerow([int(self.row_step[r]), p, int(self.row_token[r]), csv_cell(self.tokens[p].clean, raw),
                                 f"{self.completeness_error[r]:.6g}", csv_cell(self.prompt, raw), self.layer,
                                 *[f"{v:.6g}" for v in self.scores[r]],
                                 *[csv_cell(t.clean, raw) for t in self.tokens]])
        return Path(path)

    def to_dataframe(self):
        """Long format: per unmasked token, every source position's score at its step (core/frames.py)."""
        return frames.dataframe(frames.diffusion_table(self))

    def to_dict(self) -> dict:
        """Our schema (`schema`, `version`), every field; arrays as nested lists, null where not computed."""
        arrays = {name: json_array(name, getattr(self, name)) for name in (
            "states", "row_step", "row_position", "row_token", "scores", "signed_scores", "completeness_error",
            "per_dim", "target_value", "baseline_value")}
        return {"schema": SCHEMA, "version": schema_version(SCHEMA), "tokens": [t.to_dict() for t in self.tokens], "n_prompt": self.n_prompt,
                "mask_token_id": self.mask_token_id, "mask_text": self.mask_text, "layer": self.layer,
                "options": self.options, "model_id": self.model_id, "prompt": self.prompt, **arrays}

    def save(self, path) -> Path:
        return write_text_atomic(path, json.dumps(self.to_dict(), allow_nan=False))


@file_reader('a saved DiffusionAttribution',
             'Pass a file written by DiffusionAttribution.save(), or re-save it')
def load_diffusion(path) -> DiffusionAttribution:
    """Read a DiffusionAttribution saved with save(); schema-checked, never unpickled."""
    where = str(path)
    data = read_json_file(path, "Re-save it with save()")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise AttrWidgetsError(f"Cannot read {where}: schema is {got!r}, expected {SCHEMA!r}. Re-save it with save().")
    try:
        tokens = [Token.from_dict(t) for t in data["tokens"]]

        def arr(name, dtype, optional=False):
            value = data.get(name)
            if value is None and optional:
                return None
            return np.array([[np.nan if v is None else v for v in row] if isinstance(row, list) else
                             (np.nan if row is None else row) for row in value], dtype=dtype)

        per_dim = data.get("per_dim")
        return DiffusionAttribution(
            tokens=tokens, n_prompt=int(data["n_prompt"]), mask_token_id=int(data["mask_token_id"]),
            states=arr("states", np.int64), row_step=arr("row_step", np.int64),
            row_position=arr("row_position", np.int64), row_token=arr("row_token", np.int64),
            scores=arr("scores", np.float32), signed_scores=arr("signed_scores", np.float32),
            completeness_error=arr("completeness_error", np.float32), layer=str(data.get("layer", "")),
            options=dict(data.get("options") or {}), model_id=str(data.get("model_id", "")),
            prompt=str(data.get("prompt", "")), mask_text=str(data.get("mask_text", "[MASK]")),
            per_dim=None if per_dim is None else np.array(per_dim, dtype=np.float32),
            target_value=arr("target_value", np.float32, True), baseline_value=arr("baseline_value", np.float32, True),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AttrWidgetsError(f"Cannot read {where}: malformed content ({exc!r}). Re-save it with save().") from None
