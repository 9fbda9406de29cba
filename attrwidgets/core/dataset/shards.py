"""The Parquet shards of a dataset run: one fixed schema (a shard holding only failed rows must not infer nulls),
each shard written to a temporary file and renamed, so a killed run never leaves half a shard, and the ids
already written, which resume skips."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

SHARD_GLOB = "part-*.parquet"


def schema():
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()), ("status", pa.string()), ("n_tokens", pa.int32()),
        ("token_text", pa.list_(pa.string())), ("token_ids", pa.list_(pa.int64())), ("tokens_json", pa.string()),
        ("target_positions", pa.list_(pa.int32())), ("target_tokens", pa.list_(pa.string())),
        ("scores", pa.list_(pa.list_(pa.float32()))), ("completeness", pa.list_(pa.float32())),
        ("prompt", pa.string()),
    ])


def shard_files(out: Path) -> list[Path]:
    return sorted(out.glob(SHARD_GLOB))


def write_shard(out: Path, rows: list[dict]) -> Path | None:
    """rows -> out/part-<n>-<uuid>.parquet, atomically (temporary name, then rename)."""
    if not rows:
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=schema())
    number = len(shard_files(out))
    final = out / f"part-{number:05d}-{uuid.uuid4().hex[:8]}.parquet"
    temporary = out / f".{final.name}.tmp"
    pq.write_table(table, temporary)
    os.replace(temporary, final)
    return final


def written_ids(out: Path) -> set[str]:
    """Ids already in the shards (ok or failed: a failure is a result too; none is written twice)."""
    import pyarrow.parquet as pq

    ids: set[str] = set()
    for file in shard_files(out):
        ids.update(pq.read_table(file, columns=["id"]).column("id").to_pylist())
    return ids


def remove_temporaries(out: Path) -> None:
    """What a killed run left half-written: never a shard (its rows are computed again)."""
    for file in out.glob(".part-*.tmp"):
        file.unlink(missing_ok=True)
