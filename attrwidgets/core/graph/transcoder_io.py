"""Load transcoders: our layout, and the public layouts circuit-tracer reads (core/graph/transcoder_write.py
writes ours and circuit-tracer's).

Layouts load_transcoder(folder) accepts (found by the files present, never by trusting a name):
- attrwidgets: config.json (schema, kind, activation, sizes, model, training settings and figures) and
  transcoder.safetensors (W_enc.{l}, b_enc.{l}, W_dec.{l}, b_dec.{l}, threshold.{l}, W_skip.{l}).
- circuit-tracer per-layer: config.yaml (model_kind: transcoder_set) + layer_{i}.safetensors (W_enc [F, D],
  b_enc, W_dec [F, D], b_dec, activation_function.threshold (absent: ReLU), optional W_skip [D, D]).
- circuit-tracer cross-layer: config.yaml (model_kind: cross_layer_transcoder) + W_enc_{i}.safetensors
  (W_enc_{i}, b_enc_{i}, b_dec_{i}, threshold_{i}) + W_dec_{i}.safetensors (W_dec_{i} [F, L - i, D]).
- the hub form: a config.yaml whose `transcoders:` list names one file per layer (hf:// URIs or paths),
  each found in the folder by the longest tail of its path that exists there: GemmaScope .npz (W_enc
  [D, F], transposed), GemmaScope-2 safetensors (w_enc [D, F], w_dec, affine_skip_connection) or the
  per-layer safetensors above.
- a hub repository id ("owner/name", optionally "@revision") where the hub is reachable: what it holds is
  downloaded into one local folder first (core/graph/transcoder_fetch.py).
- a folder holding only a training checkpoint (an interrupted aw.train_transcoder run): aw.load_transcoder
  (core/graph/checkpoint.py) reads that one, above this module.
No pickle anywhere: safetensors, JSON, YAML (safe_load) and .npz read with allow_pickle=False.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from attrwidgets.core.files import file_reader
from attrwidgets.core.graph.transcoder import Transcoder
from attrwidgets.core.graph.transcoder_fetch import fetch_transcoder, repository_id
from attrwidgets.core.graph.transcoder_hub import load_listed
from attrwidgets.core.graph.transcoder_layouts import (
    assemble_plt,
    ct_config,
    layer_from_params,
    read_safetensors,
)
from attrwidgets.core.graph.transcoder_write import ACCEPTED, SCHEMA, VERSION, WEIGHTS, check_shapes
from attrwidgets.errors import AttrWidgetsError


# -- loading -----------------------------------------------------------------------------------------
@file_reader('a transcoder folder (config.json or config.yaml with safetensors)',
             "Pass a folder written by Transcoder.save() or aw.train_transcoder(save=...), or a circuit-tracer "
             "transcoder folder")
def load_transcoder(folder, device=None, dtype: torch.dtype | None = None) -> Transcoder:
    """Read a transcoder folder in any accepted layout, or a hub repository id (module docstring). Checks the
    files' internal consistency only; the graph calls transcoder.check_model(...) against the model."""
    repo = repository_id(str(folder))
    path = fetch_transcoder(*repo) if repo else Path(folder).expanduser()  # a hub id: downloaded once
    if path.is_file() and path.name in ("config.yaml", "config.json"):
        path = path.parent
    if not path.is_dir():
        raise AttrWidgetsError(f"Transcoder folder {str(folder)!r} does not exist. Accepted layouts: {ACCEPTED}.")
    if (path / "config.json").exists():
        tc = _load_ours(path)
    elif (path / "config.yaml").exists():
        tc = _load_yaml_layout(path)
    elif _numbered(path, r"layer_(\d+)\.safetensors"):
        tc = _load_ct_plt(path, {})
    elif _numbered(path, r"W_enc_(\d+)\.safetensors"):
        tc = _load_ct_clt(path, {})
    else:
        found = sorted(p.name for p in path.iterdir())[:12]
        raise AttrWidgetsError(f"{path} holds no transcoder layout I know (found: {found or 'nothing'}). "
                               f"Accepted layouts: {ACCEPTED}.")
    check_shapes(tc, str(path))
    return tc.to(device, dtype) if (device is not None or dtype is not None) else tc


def has_layout(path: Path) -> bool:
    """Does the folder hold one of the layouts load_transcoder reads (by the files present)?"""
    return ((path / "config.json").exists() or (path / "config.yaml").exists()
            or bool(_numbered(path, r"layer_(\d+)\.safetensors")) or bool(_numbered(path, r"W_enc_(\d+)\.safetensors")))


def _load_ours(path: Path) -> Transcoder:
    try:
        header = json.loads((path / "config.json").read_text())
    except ValueError as exc:
        raise AttrWidgetsError(f"{path / 'config.json'} is not valid JSON ({exc}).") from exc
    if header.get("schema") != SCHEMA:
        raise AttrWidgetsError(f"{path / 'config.json'} is not an attrwidgets transcoder config (schema "
                               f"{header.get('schema')!r}, expected {SCHEMA!r}). Accepted layouts: {ACCEPTED}.")
    if header.get("version", 0) > VERSION:
        raise AttrWidgetsError(f"{path} was written by a newer attrwidgets (transcoder format version "
                               f"{header['version']} > {VERSION}): upgrade attrwidgets to read it.")
    tensors = read_safetensors(path / header.get("weights", WEIGHTS))
    L = int(header["n_layers"])

    def per_layer(name, required=True):
        missing = [layer for layer in range(L) if f"{name}.{layer}" not in tensors]
        if missing and (required or len(missing) < L):
            raise AttrWidgetsError(f"{path / WEIGHTS} lacks {name} for layers {missing[:8]}: the file is incomplete.")
        return None if missing else [tensors[f"{name}.{layer}"] for layer in range(L)]

    return Transcoder(header["kind"], header["activation"], per_layer("W_enc"), per_layer("b_enc"),
                      per_layer("W_dec"), per_layer("b_dec"), per_layer("threshold", False),
                      per_layer("W_skip", False), header.get("top_k"), header.get("config") or {})


def _load_yaml_layout(path: Path) -> Transcoder:
    import yaml

    try:
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    except yaml.YAMLError as exc:
        raise AttrWidgetsError(f"{path / 'config.yaml'} is not valid YAML ({exc}).") from exc
    kind = config.get("model_kind") if isinstance(config, dict) else None
    if kind not in ("transcoder_set", "cross_layer_transcoder"):
        raise AttrWidgetsError(f"{path / 'config.yaml'} has model_kind {kind!r}; circuit-tracer layouts use "
                               f"'transcoder_set' or 'cross_layer_transcoder'. Accepted layouts: {ACCEPTED}.")
    if config.get("transcoders"):
        return load_listed(path, config)
    return _load_ct_plt(path, config) if kind == "transcoder_set" else _load_ct_clt(path, config)


def _numbered(path: Path, pattern: str) -> int:
    """How many files 0..n-1 match pattern; raises if the numbering has gaps."""
    numbers = sorted(int(m.group(1)) for p in path.iterdir() if (m := re.fullmatch(pattern, p.name)))
    if numbers and numbers != list(range(len(numbers))):
        missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
        label = pattern.replace("(\\d+)", "{i}").replace("\\", "")
        raise AttrWidgetsError(f"{path} has {label} files for layers {numbers[:6]}... but none for layers "
                               f"{missing[:8]}: every layer needs one.")
    return len(numbers)


def _load_ct_plt(path: Path, config: dict) -> Transcoder:
    n = _numbered(path, r"layer_(\d+)\.safetensors")
    if n == 0:
        raise AttrWidgetsError(f"{path} has a per-layer config.yaml but no layer_{{i}}.safetensors files (and no "
                               f"`transcoders:` list). Accepted layouts: {ACCEPTED}.")
    layers = [layer_from_params(read_safetensors(path / f"layer_{i}.safetensors"), str(path / f"layer_{i}"))
              for i in range(n)]
    return assemble_plt(layers, str(path), ct_config(config))


def _load_ct_clt(path: Path, config: dict) -> Transcoder:
    n = _numbered(path, r"W_enc_(\d+)\.safetensors")
    if n == 0:
        raise AttrWidgetsError(f"{path} has a cross-layer config.yaml but no W_enc_{{i}}.safetensors files. "
                               f"Accepted layouts: {ACCEPTED}.")
    W_enc, b_enc, b_dec, threshold, W_dec = [], [], [], [], []
    for i in range(n):
        enc = read_safetensors(path / f"W_enc_{i}.safetensors")
        dec = read_safetensors(path / f"W_dec_{i}.safetensors")
        missing = [k for k in (f"W_enc_{i}", f"b_enc_{i}", f"b_dec_{i}") if k not in enc]
        missing += [f"W_dec_{i}"] if f"W_dec_{i}" not in dec else []
        if missing:
            raise AttrWidgetsError(f"{path}: layer {i} lacks {', '.join(missing)}. Accepted layouts: {ACCEPTED}.")
        W_enc.append(enc[f"W_enc_{i}"])
        b_enc.append(enc[f"b_enc_{i}"].reshape(-1))
        b_dec.append(enc[f"b_dec_{i}"].reshape(-1))
        threshold.append(enc.get(f"threshold_{i}"))
        W_dec.append(dec[f"W_dec_{i}"])
    jump = [t is not None for t in threshold]
    if any(jump) and not all(jump):
        raise AttrWidgetsError(f"{path}: only some layers have threshold_{{i}} (JumpReLU): every layer needs one.")
    return Transcoder("clt", "jumprelu" if all(jump) else "relu", W_enc, b_enc, W_dec, b_dec,
                      [t.reshape(-1) for t in threshold] if all(jump) else None, None, None, ct_config(config))
