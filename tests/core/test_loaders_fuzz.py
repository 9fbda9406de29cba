"""Every file reader is attack surface: whatever bytes sit at the path (truncated, bytes flipped, wrong types,
NaN/inf, huge or negative declared sizes, deep nesting, a pickle renamed to .json, a folder where a file
belongs), only an AttrWidgetsError may come out, or a result. Never another exception, a hang, or an
allocation made before the declared sizes were checked. Property-based (hypothesis) over every reader."""

from __future__ import annotations

import functools
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attrwidgets as aw
from attrwidgets.core.token.result_io import save_tokenlens
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import tiny_handle, tiny_masked_lm, toy_graph
from tests.core.graph_reference import random_transcoder

INSEQ_FILES = Path(__file__).parent / "data" / "inseq"
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@functools.cache
def originals(root: str) -> dict:
    """One valid file (or folder) per reader, written once: name -> (path, loader, the file to mutate)."""
    root = Path(root)
    h = tiny_handle("llama")
    token = aw.attribute(h, "the cat", method="integrated_gradients", max_new_tokens=2, n_steps=2, progress=False)
    out = {}
    out["result"] = (token.save(root / "r.json") or root / "r.json", aw.load_result, root / "r.json")
    save_tokenlens(token, root / "tl.json")
    out["tokenlens"] = (root / "tl.json", aw.load_result, root / "tl.json")
    out["graph"] = (toy_graph(seed=1).save(root / "g.json"), aw.load_graph, root / "g.json")
    out["graph tensors"] = (root / "g.json", aw.load_graph, root / "g.safetensors")
    lig = aw.lig(h, "the cat sat", layers=[0], n_steps=2)
    lig.to_lig_json(root / "lig.json")
    out["lig json"] = (root / "lig.json", aw.load_lig_json, root / "lig.json")
    out["diffusion"] = (aw.dlig(tiny_masked_lm(seed=0), "the cat", layer="block 0", gen_length=2, denoising_steps=1,
                                n_steps=2, progress=False).save(root / "d.json"), aw.load_diffusion, root / "d.json")
    dec = aw.depass(h, "the cat sat")
    out["decomposition"] = (dec.save(root / "dec.json"), aw.load_decomposition, root / "dec.json")
    heads = aw.head_contributions(h, "the cat sat")
    out["head contributions"] = (heads.save(root / "hc.json"), aw.load_head_contributions, root / "hc.json")
    random_transcoder(2, 16).save(root / "tc")
    out["transcoder config"] = (root / "tc", aw.load_transcoder, root / "tc" / "config.json")
    for name, file in (("inseq", "v07.json"), ("inseq 0.6", "v06_ndarray.json"), ("inseq gz", "v07_two.json.gz")):
        shutil.copy(INSEQ_FILES / file, root / file)  # written by Inseq itself (tests/core/test_inseq_io.py)
        out[name] = (root / file, aw.load, root / file)
    random_transcoder(2, 16).save(root / "tc_ct", format="circuit-tracer")
    out["transcoder (circuit-tracer) config"] = (root / "tc_ct", aw.load_transcoder, root / "tc_ct" / "config.yaml")
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return originals(str(tmp_path_factory.mktemp("originals")))


def _copy(files, name, tmp_path):
    """A private copy of the original's folder: -> (path to load, file to mutate)."""
    path, loader, target = files[name]
    base = Path(path).parent  # the folder holding the file (or the transcoder folder)
    work = tmp_path / "case"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(base, work)
    return loader, work / Path(path).relative_to(base), work / Path(target).relative_to(base)


def _only_our_error(loader, path):
    try:
        loader(path)
    except AttrWidgetsError:
        pass  # clear, named: what we promise


NAMES = ["result", "tokenlens", "graph", "graph tensors", "lig json", "diffusion", "decomposition",
         "head contributions", "transcoder config", "transcoder (circuit-tracer) config", "inseq", "inseq 0.6",
         "inseq gz"]


@pytest.mark.parametrize("name", NAMES)
def test_the_original_loads(files, name):
    path, loader, _ = files[name]
    assert loader(path) is not None


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_truncated_or_flipped_bytes(files, name, tmp_path, data):
    loader, path, target = _copy(files, name, tmp_path)
    raw = bytearray(target.read_bytes())
    if data.draw(st.booleans(), "truncate"):
        raw = raw[: data.draw(st.integers(0, max(0, len(raw) - 1)), "keep")]
    else:
        for _ in range(data.draw(st.integers(1, 8), "flips")):
            i = data.draw(st.integers(0, len(raw) - 1), "at")
            raw[i] = data.draw(st.integers(0, 255), "byte")
    target.write_bytes(bytes(raw))
    _only_our_error(loader, path)


def _json_paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _json_paths(v, (*prefix, k))
    elif isinstance(value, list) and value:
        for i in sorted({0, len(value) - 1}):
            yield from _json_paths(value[i], (*prefix, i))


HOSTILE_VALUES = st.sampled_from([
    None, True, "text", "", -1, 0, 2**63, -(2**63), 1e308, [], {}, [[]], [None], {"a": 1}, "NaN",
    [1e30] * 3, [-5, 3], [2**31, 2**31], list(range(5)),
])


NOT_JSON = ("graph tensors", "transcoder (circuit-tracer) config", "inseq gz")


@pytest.mark.parametrize("name", [n for n in NAMES if n not in NOT_JSON])
@FUZZ
@given(data=st.data())
def test_wrong_types_nan_and_huge_values_in_the_json(files, name, tmp_path, data):
    loader, path, target = _copy(files, name, tmp_path)
    doc = json.loads(target.read_text(encoding="utf-8"))
    where = data.draw(st.sampled_from(list(_json_paths(doc))), "where")
    value = data.draw(st.one_of(HOSTILE_VALUES, st.just(float("nan")), st.just(float("inf"))), "value")
    if where == ():
        doc = value
    else:
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        if data.draw(st.booleans(), "delete") and isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent[where[-1]] = value
    target.write_text(json.dumps(doc), encoding="utf-8")  # NaN/Infinity as Python's json writes them
    _only_our_error(loader, path)


@pytest.mark.parametrize("name", NAMES)
def test_deep_nesting_pickles_folders_and_empty_files(files, name, tmp_path):
    for content in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
                    pickle.dumps({"schema": "attrwidgets.attribution/1", "x": np.zeros(3)}), b"", b"\x00" * 64):
        loader, path, target = _copy(files, name, tmp_path)
        target.write_bytes(content)
        _only_our_error(loader, path)
    loader, path, target = _copy(files, name, tmp_path)
    target.unlink()
    target.mkdir()  # a folder where the file belongs
    _only_our_error(loader, path)
    with pytest.raises(AttrWidgetsError):
        loader(tmp_path / "no" / "such" / "file.json")
