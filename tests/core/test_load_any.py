"""aw.load(path) returns the right type from the file itself, for every result type, the external layouts and
a transcoder folder; a file it does not know is a clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest

import attrwidgets as aw
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import tiny_handle
from tests.core.result_samples import PROMPT, results


@pytest.fixture(scope="module")
def handle():
    return tiny_handle("llama")


def text_of(token) -> str:
    return token if isinstance(token, str) else token.text  # a Graph keeps its tokens as text


def test_every_result_type_comes_back_as_itself(handle, tmp_path):
    for name, result in results(handle):
        saved = result.save(tmp_path / name)
        assert saved.exists(), name  # save(path) -> the Path it wrote
        back = aw.load(saved)
        assert type(back) is type(result), name
        assert [text_of(t) for t in back.tokens] == [text_of(t) for t in result.tokens], name
    graph = aw.load(tmp_path / "graph")  # the path as given to save(), without the .json
    np.testing.assert_array_equal(graph.logit_weights, aw.load_graph(tmp_path / "graph.json").logit_weights)


def test_a_graph_reattaches_its_model(handle, tmp_path):
    graph = aw.attribution_graph(handle, PROMPT, progress=False)
    back = aw.load(graph.save(tmp_path / "g"), model=handle)
    assert back.engine is not None and aw.load(tmp_path / "g").engine is None
    attribution = aw.attribute(handle, PROMPT, method="saliency", max_new_tokens=1, progress=False)
    with pytest.raises(AttrWidgetsError, match="re-attach a graph;.*takes neither"):
        aw.load(attribution.save(tmp_path / "a.json"), model=handle)


def test_external_layouts_and_a_transcoder_folder(handle, tmp_path):
    from attrwidgets.core.token.result_io import save_tokenlens
    from tests.core.graph_reference import random_transcoder

    attribution = aw.attribute(handle, PROMPT, method="saliency", max_new_tokens=2, progress=False)
    back = aw.load(save_tokenlens(attribution, tmp_path / "tokenlens.json"))
    assert type(back) is aw.Attribution and back.n_targets == 2
    lig = aw.lig(handle, PROMPT, layers=[0], n_steps=2, granularity="layer")
    upstream = tmp_path / "lig.json"
    lig.to_lig_json(upstream)  # the LIG package's layout: no schema key
    assert "schema" not in json.loads(upstream.read_text())
    assert type(aw.load(upstream)) is aw.LayerAttribution
    folder = random_transcoder(2, 32).save(tmp_path / "tc")
    assert type(aw.load(folder)) is aw.Transcoder


@pytest.mark.parametrize(("content", "message"), [
    ('{"schema": "attrwidgets.unknown/9", "x": 1}', "schema 'attrwidgets.unknown/9' is not one this attrwidgets"),
    ('{"a": 1}', r"no schema and not a layout attrwidgets knows \(found \['a'\]\)"),
    ("not json at all", "not a JSON file attrwidgets knows"),
    ("[1, 2]", "found list"),
])
def test_a_file_it_does_not_know_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(AttrWidgetsError, match=message):
        aw.load(path)


def test_a_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(AttrWidgetsError, match="no such file or folder"):
        aw.load(tmp_path / "nothing")
