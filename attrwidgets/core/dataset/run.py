"""aw.attribute_dataset: every example of a dataset attributed, on one machine or a Ray cluster, into Parquet
shards with a manifest; resumable; opened as a DatasetResult (docs/methods/dataset.md)."""

from __future__ import annotations

from pathlib import Path

from attrwidgets.core.dataset.engines import ENGINES, run_local, run_ray
from attrwidgets.core.dataset.examples import check_method
from attrwidgets.core.dataset.inputs import read_records
from attrwidgets.core.dataset.manifest import check_same_run, manifest_of, read_manifest, write_manifest
from attrwidgets.core.dataset.result import DatasetResult
from attrwidgets.core.dataset.shards import remove_temporaries, shard_files, written_ids
from attrwidgets.errors import AttrWidgetsError

DEFAULT_BATCH = {"local": 8, "ray": 4}


def attribute_dataset(data, *, model=None, method: str = "integrated_gradients", out="attributions/",
                      engine: str = "local", workers: int | None = None, gpus_per_worker: float = 0,
                      batch_size: int | None = None, id_column: str = "id", text_column: str = "text",
                      messages_column: str | None = None, target_column: str | None = None,
                      max_new_tokens: int = 8, resume: bool = True, progress: bool = True,
                      **method_options) -> DatasetResult:
    """Attribute every example of `data` with `method` and write the rows to Parquet shards under `out`.

    data: a list of strings or dicts, a DataFrame, a Parquet/JSONL path, a datasets.Dataset or a ray.data.Dataset;
    without an id column, ids are row numbers. model: a name or path (each Ray worker loads it once), or, for
    engine="local", a ModelHandle. method: a token method (aw.methods()), "depass" (token level) or "lig" (its
    layer route at layer=, default the last block). A failing example is recorded with its error; a run killed
    part-way resumes with resume=True (written examples are skipped); a different run in `out` is refused.
    """
    method = check_method(method)
    if engine not in ENGINES:
        raise AttrWidgetsError(f"Unknown engine {engine!r}: use 'local' (one process) or 'ray' (pip install "
                               "'attrwidgets[ray]').")
    for name, value in (("workers", workers), ("batch_size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise AttrWidgetsError(f"{name} must be a positive integer or None, got {value!r}.")
    if gpus_per_worker < 0:
        raise AttrWidgetsError(f"gpus_per_worker must be >= 0, got {gpus_per_worker!r}.")
    model_id = _model_id(model, engine)
    records = read_records(data, id_column=id_column, text_column=text_column, messages_column=messages_column,
                           target_column=target_column)
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    columns = {"text_column": text_column, "messages_column": messages_column, "target_column": target_column}
    manifest = manifest_of(method, method_options, model_id, max_new_tokens, columns)
    _check_out(out, manifest, resume)
    write_manifest(out, manifest)
    remove_temporaries(out)
    done = written_ids(out)
    todo = [r for r in records if r["id"] not in done]
    batch = batch_size or DEFAULT_BATCH[engine]
    if todo:
        if engine == "local":
            run_local(model, method, method_options, max_new_tokens, todo, out, batch, progress)
        else:
            run_ray(model, method, method_options, max_new_tokens, todo, out, batch, progress, workers=workers,
                    gpus_per_worker=gpus_per_worker)
    return DatasetResult(out)


def _model_id(model, engine: str) -> str:
    from attrwidgets.models import DEFAULT_MODEL_ID, ModelHandle

    if model is None:
        return DEFAULT_MODEL_ID
    if isinstance(model, ModelHandle):
        if engine == "ray":
            raise AttrWidgetsError("engine='ray' loads the model in every worker: pass its name or path, not a "
                                   "ModelHandle (a loaded model stays in this process).")
        return model.model_id
    if isinstance(model, (str, Path)):
        return str(model)
    raise AttrWidgetsError(f"model must be a name, a path or a ModelHandle, got {type(model).__name__}.")


def _check_out(out: Path, manifest: dict, resume: bool) -> None:
    old = read_manifest(out)
    if old is not None and not shard_files(out):
        return  # a run that wrote nothing (it failed before its first batch): nothing to mix with
    if old is None:
        if shard_files(out):
            raise AttrWidgetsError(f"{out} holds Parquet shards but no manifest: write this run to another out=.")
        return
    if not resume:
        raise AttrWidgetsError(f"{out} already holds a run ({len(shard_files(out))} shards): pass resume=True to "
                               "continue it, or another out= folder.")
    check_same_run(old, manifest, out)
