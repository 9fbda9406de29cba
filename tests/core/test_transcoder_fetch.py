"""aw.load_transcoder(repository id): the published layouts fetched from a hub, here a fake one (folders per
repository behind huggingface_hub's two calls), then read back identically; offline is a clear error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from attrwidgets.core.graph.checkpoint import load_transcoder
from attrwidgets.core.graph.transcoder_fetch import repository_id
from attrwidgets.errors import AttrWidgetsError
from tests.core.test_transcoder_io import _write_gemma_scope, assert_same_forward, make


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """repos: owner/name -> folder; every download recorded."""
    import huggingface_hub

    repos, downloads = {}, []
    monkeypatch.setenv("ATTRWIDGETS_CACHE", str(tmp_path / "cache"))

    def list_repo_files(repo, revision=None):
        if repo not in repos:
            raise OSError(f"404: {repo}")
        return sorted(str(p.relative_to(repos[repo])) for p in repos[repo].rglob("*") if p.is_file())

    def hf_hub_download(repo, filename, revision=None, local_dir=None):
        downloads.append((repo, filename))
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(repos[repo] / filename, target)
        return str(target)

    monkeypatch.setattr(huggingface_hub, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)

    def add(repo: str) -> Path:
        repos[repo] = tmp_path / "hub" / repo
        repos[repo].mkdir(parents=True)
        return repos[repo]

    return add, downloads


def test_gemma_2_2b_per_layer_listed_in_another_repository(hub):
    """circuit-tracer's Gemma-2-2B config lists GemmaScope .npz files of google's repository by hf:// URI."""
    add, downloads = hub
    tc = make("plt", "jumprelu")
    refs = _write_gemma_scope(add("google/gemma-scope-2b-pt-transcoders"), tc)
    config = {"model_kind": "transcoder_set", "feature_input_hook": "ln2.hook_normalized",
              "feature_output_hook": "hook_mlp_out", "transcoders": refs}
    (add("mntss/gemma-scope-transcoders") / "config.yaml").write_text(yaml.safe_dump(config))
    assert_same_forward(tc, load_transcoder("mntss/gemma-scope-transcoders"))
    assert ("google/gemma-scope-2b-pt-transcoders", "layer_0/width_16k/average_l0_50/params.npz") in downloads


@pytest.mark.parametrize("kind,skip,repo", [("plt", True, "mntss/skip-transcoder-Llama-3.2-1B-131k-nobos"),
                                            ("plt", False, "mwhanna/qwen3-0.6b-transcoders-lowl0"),
                                            ("clt", False, "mwhanna/qwen3-0.6b-clt")])
def test_llama_skip_and_qwen3_per_layer_and_cross_layer_folders(hub, kind, skip, repo):
    add, downloads = hub
    tc = make(kind, "jumprelu", skip=skip)
    tc.save(add(repo), format="circuit-tracer")
    back = load_transcoder(repo + "@main")
    assert_same_forward(tc, back)
    assert (back.W_skip is not None) == skip and back.kind == kind
    n = len(downloads)
    load_transcoder(repo + "@main")  # the hub library skips what is there; we only ask again
    assert len(downloads) == 2 * n


def test_unreachable_hub_and_unknown_repository_are_clear_errors(hub):
    add, _ = hub
    with pytest.raises(AttrWidgetsError, match="Could not download transcoder 'nobody/nothing'.*pass that folder"):
        load_transcoder("nobody/nothing")
    (add("someone/readme-only") / "README.md").write_text("no transcoder here")
    with pytest.raises(AttrWidgetsError, match="holds no transcoder layout"):
        load_transcoder("someone/readme-only")


def test_what_counts_as_a_repository_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert repository_id("owner/name") == ("owner/name", None)
    assert repository_id("owner/name@v1.0") == ("owner/name", "v1.0")
    (tmp_path / "local" / "folder").mkdir(parents=True)
    assert repository_id("local/folder") is None  # an existing path is a path
    assert repository_id("./owner/name") is None and repository_id("/abs/path") is None
    assert repository_id("just-a-name") is None
