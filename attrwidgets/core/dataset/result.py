"""DatasetResult: a finished (or partly finished) dataset run read back from its shards and manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from attrwidgets.core.dataset.manifest import read_manifest
from attrwidgets.core.dataset.shards import shard_files
from attrwidgets.errors import AttrWidgetsError

NON_CAUSAL = ("lig",)  # a target reads its own position too (LIG's z -> z at every position)


class DatasetResult:
    """out/ of aw.attribute_dataset: `to_pandas()`, `ds[id]` (an Attribution for the TokenMatrix),
    `summary()`, `failed()`."""

    def __init__(self, out):
        self.out = Path(out).expanduser()
        manifest = read_manifest(self.out)
        if manifest is None:
            raise AttrWidgetsError(f"{self.out} holds no dataset run (no manifest.json): pass the out= folder of "
                                   "aw.attribute_dataset.")
        self.manifest = manifest
        self._frame = None

    @property
    def method(self) -> str:
        return self.manifest["method"]

    def to_pandas(self):
        """One row per example: id, status, tokens, targets, scores (a list per target), completeness."""
        if self._frame is None:
            import pandas as pd
            import pyarrow.parquet as pq

            from attrwidgets.core.dataset.shards import schema

            files = shard_files(self.out)
            tables = [pq.read_table(f) for f in files]
            self._frame = (pd.concat([t.to_pandas() for t in tables], ignore_index=True) if tables
                           else schema().empty_table().to_pandas())
        return self._frame

    def __len__(self) -> int:
        return len(self.to_pandas())

    @property
    def ids(self) -> list[str]:
        return self.to_pandas()["id"].tolist()

    def __getitem__(self, example_id):
        from attrwidgets.core.token.result import Attribution
        from attrwidgets.core.tokens import Token

        frame = self.to_pandas()
        match = frame[frame["id"] == str(example_id)]
        if match.empty:
            raise AttrWidgetsError(f"No example with id {example_id!r} in {self.out} ({len(frame)} examples).")
        row = match.iloc[0]
        if row["status"] != "ok":
            raise AttrWidgetsError(f"Example {example_id!r} failed: {row['status']}")
        tokens = [Token.from_dict(t) for t in json.loads(row["tokens_json"])]
        scores = np.stack([np.asarray(s, np.float32) for s in row["scores"]]) if len(row["scores"]) else \
            np.zeros((0, len(tokens)), np.float32)
        error = row["completeness"]
        return Attribution(tokens=tokens, target_positions=[int(p) for p in row["target_positions"]], scores=scores,
                           method=self.method, options=dict(self.manifest["options"]),
                           model_id=self.manifest["model_id"], prompt=row["prompt"],
                           completeness_error=None if error is None else np.asarray(error, np.float32))

    def failed(self):
        """The examples that failed, with their error messages."""
        frame = self.to_pandas()
        return frame.loc[frame["status"] != "ok", ["id", "status"]].reset_index(drop=True)

    def summary(self):
        """Mean and max attribution over the set, per source token id and per segment (prompt, system, user,
        assistant, generated): each (example, target, earlier source) counts once."""
        import pandas as pd

        by_token, by_segment = {}, {}
        for _, row in self.to_pandas().iterrows():
            if row["status"] != "ok":
                continue
            tokens = json.loads(row["tokens_json"])
            for position, scores in zip(row["target_positions"], row["scores"]):
                upto = position + 1 if self.method in NON_CAUSAL else position
                for k in range(upto):
                    value = float(scores[k])
                    for table, key in ((by_token, (tokens[k]["id"], tokens[k]["clean"])), (by_segment, tokens[k]["segment"])):
                        count, total, top = table.get(key, (0, 0.0, -np.inf))
                        table[key] = (count + 1, total + value, max(top, value))
        rows = [{"by": "token", "token_id": int(i), "key": text, "count": c, "mean": s / c, "max": m}
                for (i, text), (c, s, m) in by_token.items()]
        rows += [{"by": "segment", "token_id": -1, "key": seg, "count": c, "mean": s / c, "max": m}
                 for seg, (c, s, m) in by_segment.items()]
        frame = pd.DataFrame(rows, columns=["by", "token_id", "key", "count", "mean", "max"])
        return frame.sort_values(["by", "mean"], ascending=[True, False]).reset_index(drop=True)

    def __repr__(self) -> str:
        frame = self.to_pandas()
        failed = int((frame["status"] != "ok").sum())
        return (f"DatasetResult({str(self.out)!r}, method={self.method!r}, model={self.manifest['model_id']!r}, "
                f"{len(frame)} examples, {failed} failed)")
