"""aw.attribute_dataset(engine="ray") on a local Ray (2 CPUs): the same scores as the local engine with 1 and 2
actors (each actor runs 1 torch thread, so sums may differ in the last bits), a ray.data.Dataset as input,
and resume across engines writing each id exactly once."""

from __future__ import annotations

import numpy as np
import pytest

import attrwidgets as aw
from tests.core.dataset_support import records, tiny_model_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_model_folder(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def local(folder, tmp_path_factory):
    return aw.attribute_dataset(records(), model=str(folder), method="integrated_gradients", n_steps=8,
                                out=tmp_path_factory.mktemp("local"), max_new_tokens=3, progress=False)


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_gives_the_local_engines_scores(ray_local, folder, local, tmp_path, workers):
    ds = aw.attribute_dataset(records(), model=str(folder), method="integrated_gradients", n_steps=8,
                              out=tmp_path / "ray", engine="ray", workers=workers, batch_size=2, max_new_tokens=3,
                              progress=False)
    assert sorted(ds.ids) == sorted(local.ids) and ds.failed().empty
    for example_id in local.ids:
        ours, theirs = ds[example_id], local[example_id]
        assert [t.id for t in ours.tokens] == [t.id for t in theirs.tokens]
        scale = float(np.abs(theirs.scores).max())
        np.testing.assert_allclose(ours.scores, theirs.scores, rtol=0, atol=1e-5 * scale)


def test_more_actors_than_cpus_share_them(ray_local, folder, local, tmp_path):
    ds = aw.attribute_dataset(records(3), model=str(folder), method="integrated_gradients", n_steps=8,
                              out=tmp_path / "ray", engine="ray", workers=3, max_new_tokens=3, progress=False)
    assert sorted(ds.ids) == sorted(r["id"] for r in records(3)) and ds.failed().empty


def test_ray_dataset_input_and_resume_across_engines(ray_local, folder, tmp_path):
    out = tmp_path / "out"
    data = records(8)
    aw.attribute_dataset(data[:3], model=str(folder), method="saliency", out=out, max_new_tokens=2, progress=False)
    ds = aw.attribute_dataset(ray_local.data.from_items(data), model=str(folder), method="saliency", out=out,
                              engine="ray", workers=2, batch_size=2, max_new_tokens=2, progress=False)
    frame = ds.to_pandas()
    assert sorted(frame["id"]) == sorted(r["id"] for r in data) and frame["id"].is_unique


def test_a_worker_that_cannot_load_the_model_is_a_clear_error(ray_local, tmp_path):
    from attrwidgets.errors import AttrWidgetsError

    with pytest.raises(AttrWidgetsError, match="A Ray worker failed.*does not exist"):
        aw.attribute_dataset(records(2), model=str(tmp_path / "no-model"), method="saliency", out=tmp_path / "out",
                             engine="ray", workers=1, progress=False)
