"""Any dataset a user has -> records {"id", "text" | "messages", "target"}: a list of strings or dicts, a pandas
DataFrame, a Parquet or JSONL path, a Hugging Face `datasets.Dataset`, or a `ray.data.Dataset`.

Without an id column the id of a row is its row number in the input, so the same input gives the same ids on
every run (what resume relies on). Ids are kept as strings in the shards: a mixed column would not round-trip.
"""

from __future__ import annotations

import json
from pathlib import Path

from attrwidgets.errors import AttrWidgetsError


def read_records(data, *, id_column: str, text_column: str, messages_column: str | None,
                 target_column: str | None) -> list[dict]:
    rows = _rows(data)
    records, seen = [], set()
    for number, row in enumerate(rows):
        if isinstance(row, str):
            row = {text_column: row}
        if not isinstance(row, dict):
            raise AttrWidgetsError(f"Row {number} is a {type(row).__name__}: rows must be strings or dicts.")
        record = {"id": str(row.get(id_column, number)) if id_column in row else str(number)}
        if messages_column is not None:
            if messages_column not in row:
                raise AttrWidgetsError(f"Row {number} has no {messages_column!r} column (messages_column); it has "
                                       f"{sorted(row)[:8]}.")
            record["messages"] = _messages(row[messages_column], number)
        elif text_column in row:
            record["text"] = row[text_column]
        else:
            raise AttrWidgetsError(f"Row {number} has no {text_column!r} column; it has {sorted(row)[:8]}. Pass "
                                   "text_column= (or messages_column= for chats).")
        if target_column is not None:
            record["target"] = row.get(target_column)
        if record["id"] in seen:
            raise AttrWidgetsError(f"Id {record['id']!r} appears twice in column {id_column!r}: ids must be unique "
                                   "(they are what resume skips).")
        seen.add(record["id"])
        records.append(record)
    if not records:
        raise AttrWidgetsError("The dataset is empty: nothing to attribute.")
    return records


def _messages(value, number: int) -> list[dict]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise AttrWidgetsError(f"Row {number}: messages is a string that is not JSON ({exc}).") from exc
    if not isinstance(value, (list, tuple)) or not all(isinstance(m, dict) for m in value):
        raise AttrWidgetsError(f"Row {number}: messages must be a list of {{'role', 'content'}} dicts.")
    return [dict(m) for m in value]


def _rows(data) -> list:
    if isinstance(data, (str, Path)):
        return _file_rows(Path(data).expanduser())
    module = type(data).__module__
    if module.startswith("pandas"):
        return data.to_dict("records")
    if module.startswith("datasets"):  # Hugging Face datasets (optional): rows are dicts
        return list(data)
    if module.startswith("ray.data"):
        return list(data.iter_rows())
    if isinstance(data, (list, tuple)):
        return list(data)
    raise AttrWidgetsError(f"Cannot read a dataset from {type(data).__name__}: pass a list of strings or dicts, a "
                           "DataFrame, a Parquet or JSONL path, a datasets.Dataset or a ray.data.Dataset.")


def _file_rows(path: Path) -> list:
    if not path.exists():
        raise AttrWidgetsError(f"Dataset file {str(path)!r} does not exist.")
    if path.suffix == ".parquet" or path.is_dir():
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.suffix in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise AttrWidgetsError(f"{path}:{number} is not a JSON line ({exc}).") from exc
        return rows
    raise AttrWidgetsError(f"{path} is neither .parquet nor .jsonl: convert it, or pass rows or a DataFrame.")
