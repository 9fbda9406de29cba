"""aw.load_transcoder(repository id) where the Hugging Face hub is reachable: the files a transcoder folder needs,
downloaded into one local folder that load_transcoder then reads like any other (core/graph/transcoder_io.py).

What circuit-tracer publishes under a repository id is either a whole folder (our layout, or its per-layer
`layer_{i}.safetensors` / cross-layer `W_enc_{i}`, `W_dec_{i}` files) or a `config.yaml` whose `transcoders:`
list names one file per layer, often in ANOTHER repository (hf://google/gemma-scope-2b-pt-transcoders/layer_0/
.../params.npz). Each listed file is downloaded to <folder>/<owner>/<name>/<path>, the longest tail of its URI,
which is where core/graph/transcoder_hub.py looks first. Nothing is downloaded twice: the hub's own cache
and local_dir skip files already there.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

from attrwidgets.errors import AttrWidgetsError
from attrwidgets.gguf_convert import cache_dir

# owner/name, optionally @revision: how the hub names repositories (and nothing a local path looks like)
REPO_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?")
FOLDER_FILES = re.compile(r"(config\.json|transcoder\.safetensors|layer_\d+\.safetensors|W_(enc|dec)_\d+\.safetensors)")


def repository_id(text: str) -> tuple[str, str | None] | None:
    """(repo, revision) when `text` names a hub repository rather than a local path, else None."""
    if text.startswith((".", "/", "~")) or Path(text).expanduser().exists():
        return None
    match = REPO_ID.fullmatch(text)
    return (match["repo"], match["revision"]) if match else None


def fetch_transcoder(repo: str, revision: str | None = None) -> Path:
    """Download what a transcoder in `repo` needs into cache_dir()/transcoders/<owner>--<name>; -> that folder."""
    import huggingface_hub as hub

    folder = cache_dir() / "transcoders" / (repo.replace("/", "--") + (f"@{revision}" if revision else ""))
    try:
        files = hub.list_repo_files(repo, revision=revision)
        wanted = [f for f in files if FOLDER_FILES.fullmatch(f)]
        if not wanted and "config.yaml" not in files:
            raise AttrWidgetsError(f"Repository {repo!r} holds no transcoder layout I know (files: {files[:12]}).")
        for name in wanted:
            hub.hf_hub_download(repo, name, revision=revision, local_dir=folder)
        if "config.yaml" in files:
            _fetch_listed(hub, repo, revision, folder)
    except AttrWidgetsError:
        raise
    except Exception as exc:  # the hub's own errors: offline, not found, gated, rate-limited
        raise AttrWidgetsError(
            f"Could not download transcoder {repo!r} from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            "Download its files into a folder (the config.yaml and every file it lists, keeping their paths below "
            "each repository) and pass that folder to aw.load_transcoder.") from exc
    return folder


def _fetch_listed(hub, repo: str, revision: str | None, folder: Path) -> None:
    import yaml

    config = Path(hub.hf_hub_download(repo, "config.yaml", revision=revision, local_dir=folder))
    entries = (yaml.safe_load(config.read_text()) or {}).get("transcoders")
    if not isinstance(entries, list):
        return  # a config.yaml beside the layer files themselves, downloaded already
    for entry in entries:
        ref = entry.get("filepath") if isinstance(entry, dict) else entry
        if not isinstance(ref, str):
            continue  # load_transcoder names the malformed entry
        if ref.startswith("hf://"):
            parsed = urlparse(ref)
            owner_name = [parsed.netloc, *parsed.path.strip("/").split("/")]
            source, path = "/".join(owner_name[:2]), "/".join(owner_name[2:])
            hub.hf_hub_download(source, path, local_dir=folder.joinpath(*owner_name[:2]))
        else:  # a path inside this repository
            hub.hf_hub_download(repo, ref, revision=revision, local_dir=folder)
