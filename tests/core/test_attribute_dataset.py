"""aw.attribute_dataset with the local engine: the same scores as aw.attribute, every input form, a bad example
recorded and not fatal, resume after an interruption writes each id exactly once, a mismatched run refused, and
DatasetResult (ds[id], summary, failed); the Ray engine is tested in test_attribute_dataset_ray.py."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import attrwidgets as aw
from attrwidgets.core.dataset import examples as examples_module
from attrwidgets.errors import AttrWidgetsError
from tests.core.dataset_support import TEXTS, records, tiny_model_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_model_folder(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def handle(folder):
    return aw.load_model(str(folder), device="cpu")


def run(data, out, model, **kw):
    kw.setdefault("max_new_tokens", 3)
    return aw.attribute_dataset(data, model=model, out=out, progress=False, **kw)


@pytest.mark.parametrize("method,options", [("saliency", {}), ("integrated_gradients", {"n_steps": 8}),
                                            ("input_x_gradient", {})])
def test_scores_equal_aw_attribute_on_each_example(handle, tmp_path, method, options):
    ds = run(records(), tmp_path / "out", handle, method=method, **options)
    assert len(ds) == len(TEXTS) and ds.failed().empty
    for i, text in enumerate(TEXTS):
        ref = aw.attribute(handle, text, method=method, max_new_tokens=3, progress=False, **options)
        got = ds[f"ex{i}"]
        np.testing.assert_array_equal(got.scores, np.nan_to_num(ref.scores))
        assert [t.id for t in got.tokens] == [t.id for t in ref.tokens] and got.target_positions == ref.target_positions
        if ref.completeness_error is not None:
            np.testing.assert_array_equal(got.completeness_error, ref.completeness_error)
    frame = ds.to_pandas()
    assert list(frame.columns)[:3] == ["id", "status", "n_tokens"] and set(frame["status"]) == {"ok"}


def test_depass_and_lig_rows(handle, tmp_path):
    d = run(TEXTS[:2], tmp_path / "depass", handle, method="depass")
    ref = aw.depass(handle, TEXTS[1], max_new_tokens=3, progress=False).as_attribution()
    np.testing.assert_array_equal(d["1"].scores, np.nan_to_num(ref.scores))
    lig = run(TEXTS[:1], tmp_path / "lig", handle, method="lig", n_steps=8, layer=1)
    ref = aw.lig(handle, TEXTS[0], granularity="layer", layers=[1], n_steps=8)
    np.testing.assert_array_equal(lig["0"].scores, np.nan_to_num(ref.z2z[1]))
    np.testing.assert_array_equal(lig["0"].completeness_error, ref.completeness("layer", 1))
    last = run(TEXTS[:1], tmp_path / "lig-default", handle, method="lig", n_steps=8)  # default: the last block
    np.testing.assert_array_equal(last["0"].scores, lig["0"].scores)
    bad = run(TEXTS[:1], tmp_path / "lig-bad", handle, method="lig", n_steps=8, layer=7)
    assert "out of range" in bad.failed()["status"][0]


def test_a_run_that_wrote_nothing_does_not_hold_the_folder(handle, tmp_path, monkeypatch):
    out = tmp_path / "out"

    def broken(*args, **kwargs):
        raise AttrWidgetsError("the model could not load")

    monkeypatch.setattr(examples_module.ExampleAttributor, "__init__", broken)
    with pytest.raises(AttrWidgetsError, match="could not load"):
        run(TEXTS[:1], out, handle, method="saliency")
    monkeypatch.undo()
    assert run(TEXTS[:1], out, handle, method="input_x_gradient").method == "input_x_gradient"


def test_every_input_form_gives_the_same_ids(handle, tmp_path):
    rows = records(3)
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows))
    parquet = tmp_path / "data.parquet"
    pd.DataFrame(rows).to_parquet(parquet)
    for i, data in enumerate((rows, pd.DataFrame(rows), jsonl, parquet)):
        assert run(data, tmp_path / f"o{i}", handle, method="saliency").ids == ["ex0", "ex1", "ex2"]
    # without an id column: row numbers, stable across runs
    assert run([r["text"] for r in rows], tmp_path / "plain", handle, method="saliency").ids == ["0", "1", "2"]
    chats = [{"id": "c", "messages": [{"role": "user", "content": "What is the capital of France?"}]}]
    chat = run(chats, tmp_path / "chat", handle, method="saliency", messages_column="messages")
    assert {t.segment for t in chat["c"].tokens} >= {"user"}


def test_a_bad_example_is_recorded_and_the_run_goes_on(handle, tmp_path):
    data = [TEXTS[0], "", " ".join(["word"] * 400), TEXTS[1]]
    ds = run(data, tmp_path / "out", handle, method="saliency")
    failed = ds.failed()
    assert failed["id"].tolist() == ["1", "2"]
    assert "empty" in failed["status"][0] and "context" in failed["status"][1]
    assert ds["3"].scores.shape[0] == 3
    with pytest.raises(AttrWidgetsError, match="failed: The example's text is empty"):
        ds["1"]


def test_an_interrupted_run_resumes_writing_each_id_exactly_once(handle, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = examples_module.ExampleAttributor.__call__
    calls = {"n": 0}

    def interrupted(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third batch
        return real(self, batch)

    monkeypatch.setattr(examples_module.ExampleAttributor, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(records(12), out, handle, method="saliency", batch_size=2)
    (out / ".part-00009-deadbeef.parquet.tmp").write_bytes(b"half a shard")  # what a killed writer leaves
    partial = aw.DatasetResult(out)
    assert partial.ids == ["ex0", "ex1", "ex2", "ex3"]
    monkeypatch.setattr(examples_module.ExampleAttributor, "__call__", real)
    done = run(records(12), out, handle, method="saliency", batch_size=2)
    assert sorted(done.ids) == sorted(r["id"] for r in records(12)) and len(done.ids) == 12  # none twice, none lost
    assert not list(out.glob("*.tmp"))
    again = run(records(12), out, handle, method="saliency")  # nothing left: no new shard
    assert len(list(out.glob("part-*.parquet"))) == 6 and len(again) == 12


def test_a_different_run_in_the_same_folder_is_refused(handle, tmp_path):
    out = tmp_path / "out"
    run(TEXTS[:2], out, handle, method="saliency")
    with pytest.raises(AttrWidgetsError, match="method: 'saliency' there, 'input_x_gradient' now"):
        run(TEXTS[:2], out, handle, method="input_x_gradient")
    with pytest.raises(AttrWidgetsError, match="options"):
        run(TEXTS[:2], out, handle, method="saliency", abs=False)
    with pytest.raises(AttrWidgetsError, match="max_new_tokens"):
        run(TEXTS[:2], out, handle, method="saliency", max_new_tokens=4)
    with pytest.raises(AttrWidgetsError, match="pass resume=True to continue it"):
        run(TEXTS[:2], out, handle, method="saliency", resume=False)


@pytest.mark.parametrize("kwargs,message", [
    ({"method": "salency"}, "Did you mean 'saliency'"),
    ({"engine": "spark"}, "Unknown engine 'spark'"),
    ({"workers": 0}, "workers must be a positive integer"),
    ({"text_column": "body"}, "has no 'body' column"),
])
def test_bad_arguments_are_clear_errors(handle, tmp_path, kwargs, message):
    with pytest.raises(AttrWidgetsError, match=message):
        run(records(2), tmp_path / "out", handle, **{"method": "saliency", **kwargs})


def test_duplicate_ids_and_a_handle_for_ray_are_refused(handle, tmp_path):
    with pytest.raises(AttrWidgetsError, match="appears twice"):
        run([{"id": 1, "text": "a b"}, {"id": 1, "text": "c d"}], tmp_path / "o", handle, method="saliency")
    with pytest.raises(AttrWidgetsError, match="pass its name or path, not a ModelHandle"):
        run(TEXTS[:1], tmp_path / "r", handle, method="saliency", engine="ray")


def test_summary_is_the_mean_and_max_over_earlier_sources(handle, tmp_path):
    ds = run(TEXTS[:3], tmp_path / "out", handle, method="saliency")
    values = []
    for i in range(3):
        a = ds[str(i)]
        values += [float(a.scores[r, k]) for r, p in enumerate(a.target_positions) for k in range(p)]
    summary = ds.summary()
    segments = summary[summary["by"] == "segment"].set_index("key")
    total = segments["count"].sum()
    assert total == len(values)
    assert (segments["mean"] * segments["count"]).sum() == pytest.approx(sum(values), rel=1e-6)
    assert segments["max"].max() == pytest.approx(max(values))


def test_cli_attribute_dataset(folder, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in records(2)))
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "attrwidgets.cli", "attribute-dataset", str(data), "--method",
                           "saliency", "-o", str(out), "--model", str(folder), "--max-new-tokens", "2"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert aw.DatasetResult(out).ids == ["ex0", "ex1"] and "2 examples" in done.stdout
