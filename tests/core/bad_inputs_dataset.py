"""The dataset family of the bad-input table (tests/core/bad_inputs.py): aw.attribute_dataset and DatasetResult."""

from __future__ import annotations

import attrwidgets as aw
from tests.core.bad_input_files import file_in as _file
from tests.core.bad_input_files import folder_in as _folder


def _ds(c, t, data=("a b c",), **kw):
    """aw.attribute_dataset on the tiny model into the row's own folder."""
    kw.setdefault("method", "saliency")
    kw.setdefault("out", t / "ds")
    return aw.attribute_dataset(list(data) if isinstance(data, tuple) else data, model=kw.pop("model", c.L),
                                progress=False, max_new_tokens=1, **kw)


def _ds_twice(c, t, **second):
    _ds(c, t)
    return _ds(c, t, **second)


def _ds_result(c, t, example_id):
    return _ds(c, t, data=["a b c", ""])[example_id]


def _ds_without_ray(c, t):
    import sys
    from unittest import mock

    with mock.patch.dict(sys.modules, {"ray": None}):
        return _ds(c, t, model="some/model", engine="ray")


DATASET_ROWS = [
    ("dataset", "unknown method", lambda c, t: _ds(c, t, method="salency"), "Unknown method 'salency'"),
    ("dataset", "unknown engine", lambda c, t: _ds(c, t, engine="spark"), "Unknown engine 'spark'"),
    ("dataset", "workers = 0", lambda c, t: _ds(c, t, workers=0), "workers must be a positive integer"),
    ("dataset", "batch_size = -1", lambda c, t: _ds(c, t, batch_size=-1), "batch_size must be a positive integer"),
    ("dataset", "gpus_per_worker < 0", lambda c, t: _ds(c, t, gpus_per_worker=-1), "gpus_per_worker must be >= 0"),
    ("dataset", "an empty dataset", lambda c, t: _ds(c, t, data=[]), "The dataset is empty"),
    ("dataset", "a row that is neither text nor a dict", lambda c, t: _ds(c, t, data=[3]), "rows must be strings or dicts"),
    ("dataset", "no text column", lambda c, t: _ds(c, t, data=[{"body": "a b"}]), "has no 'text' column"),
    ("dataset", "no messages column", lambda c, t: _ds(c, t, messages_column="chat"), "has no 'chat' column"),
    ("dataset", "messages that are not JSON", lambda c, t: _ds(c, t, data=[{"chat": "[oops"}], messages_column="chat"),
     "is a string that is not JSON"),
    ("dataset", "messages that are not dicts", lambda c, t: _ds(c, t, data=[{"chat": ["hi"]}], messages_column="chat"),
     "must be a list of {'role', 'content'} dicts"),
    ("dataset", "the same id twice", lambda c, t: _ds(c, t, data=[{"id": 1, "text": "a"}, {"id": 1, "text": "b"}]),
     "appears twice"),
    ("dataset", "a dataset file that does not exist", lambda c, t: _ds(c, t, data=t / "none.jsonl"), "does not exist"),
    ("dataset", "a dataset file of another format", lambda c, t: _ds(c, t, data=_file(t, "data.csv", "text\na")),
     "neither .parquet nor .jsonl"),
    ("dataset", "a JSONL line that is not JSON", lambda c, t: _ds(c, t, data=_file(t, "data.jsonl", "{oops")),
     "is not a JSON line"),
    ("dataset", "data of an unknown type", lambda c, t: _ds(c, t, data=42), "Cannot read a dataset from int"),
    ("dataset", "a ModelHandle for engine='ray'", lambda c, t: _ds(c, t, engine="ray"), "not a ModelHandle"),
    ("dataset", "a model that is no name, path or handle", lambda c, t: _ds(c, t, model=3.5),
     "model must be a name, a path or a ModelHandle"),
    ("dataset", "engine='ray' without Ray installed", _ds_without_ray, "pip install 'attrwidgets[ray]'"),
    ("dataset", "another run in the same folder", lambda c, t: _ds_twice(c, t, method="input_x_gradient"),
     "runs are never mixed"),
    ("dataset", "resume=False on a folder that holds a run", lambda c, t: _ds_twice(c, t, resume=False),
     "pass resume=True to continue it"),
    ("dataset", "a manifest that is not JSON", lambda c, t: _ds(c, t, out=_file(_folder(t, "o"), "manifest.json", "{x").parent),
     "is not valid JSON"),
    ("dataset", "shards without a manifest", lambda c, t: _ds(c, t, out=_file(_folder(t, "o"), "part-00000-x.parquet", "").parent),
     "holds Parquet shards but no manifest"),
    ("dataset", "DatasetResult of a folder without a run", lambda c, t: aw.DatasetResult(_folder(t, "empty")),
     "holds no dataset run"),
    ("dataset", "an id that is not in the result", lambda c, t: _ds_result(c, t, "nope"), "No example with id 'nope'"),
    ("dataset", "opening an example that failed", lambda c, t: _ds_result(c, t, "1"), "failed: The example's text is empty"),
]
