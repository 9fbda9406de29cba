"""The manifest beside the shards: what a run is (method, its options, the model, the package version), so a
resumed run continues the same computation and a different one is refused, never mixed in."""

from __future__ import annotations

import json
from pathlib import Path

from attrwidgets.errors import AttrWidgetsError

SCHEMA, VERSION, FILE = "attrwidgets.dataset", 1, "manifest.json"
# What must match for a resumed run to add to the same set (the package version may differ: it is recorded).
IDENTITY = ("method", "options", "model_id", "max_new_tokens", "text_column", "messages_column", "target_column")


def manifest_of(method: str, options: dict, model_id: str, max_new_tokens: int, columns: dict) -> dict:
    from attrwidgets.gguf_convert import package_version

    return {"schema": SCHEMA, "version": VERSION, "method": method, "options": _jsonable(options),
            "model_id": model_id, "max_new_tokens": int(max_new_tokens), **columns,
            "attrwidgets_version": package_version("attrwidgets")}


def read_manifest(out: Path) -> dict | None:
    file = out / FILE
    if not file.exists():
        return None
    try:
        data = json.loads(file.read_text())
    except ValueError as exc:
        raise AttrWidgetsError(f"{file} is not valid JSON ({exc}): it is not a dataset run's manifest.") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise AttrWidgetsError(f"{file} is not an attrwidgets dataset manifest (schema {SCHEMA!r}).")
    return data


def check_same_run(old: dict, new: dict, out: Path) -> None:
    differ = [key for key in IDENTITY if old.get(key) != new.get(key)]
    if differ:
        details = "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in differ)
        raise AttrWidgetsError(f"{out} holds another run ({details}). Resume it with the same settings, or write "
                               "this one to another out= folder: runs are never mixed.")


def write_manifest(out: Path, manifest: dict) -> None:
    (out / FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _jsonable(options: dict) -> dict:
    """Options as the manifest stores them (a JSON round trip, so a resumed run compares equal)."""
    try:
        return json.loads(json.dumps(options, sort_keys=True, default=str))
    except (TypeError, ValueError) as exc:
        raise AttrWidgetsError(f"Method options must be JSON-like to be recorded in the manifest ({exc}).") from exc
