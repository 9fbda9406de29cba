"""The hub form of circuit-tracer's configs: a config.yaml whose `transcoders:` list names one file per layer.

What a user downloads from the hub is that config.yaml plus the files it lists (hf:// URIs such as
hf://google/gemma-scope-2b-pt-transcoders/layer_0/width_16k/average_l0_76/params.npz). Nothing is downloaded
here: each entry is looked up in the config's folder by the longest tail of its path that exists there
(GemmaScope names every file params.npz, so the bare file name alone would be ambiguous). Entries are plain
strings (circuit-tracer >= 0.3) or {layer, filepath} records (its first release).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import torch

from attrwidgets.core.graph.transcoder import Transcoder
from attrwidgets.core.graph.transcoder_layouts import (
    assemble_plt,
    ct_config,
    layer_from_params,
    read_safetensors,
)
from attrwidgets.errors import AttrWidgetsError


def load_listed(folder: Path, config: dict) -> Transcoder:
    refs = _layer_refs(folder, config["transcoders"])
    files = [_resolve(folder, ref) for ref in refs]
    missing = [ref for ref, file in zip(refs, files) if file is None]
    if missing:
        raise AttrWidgetsError(
            f"{folder / 'config.yaml'} lists {len(refs)} transcoder files; {len(missing)} are not in {folder} "
            f"(first: {missing[0]}). Download them into that folder keeping their paths below the repository "
            "(e.g. layer_0/width_16k/average_l0_76/params.npz), or at least their file names when those differ.")
    dupes = {f for f in files if files.count(f) > 1}
    if dupes:
        raise AttrWidgetsError(f"Several layers of {folder / 'config.yaml'} resolve to the same file "
                               f"{min(map(str, dupes))}: keep each file under its full repository path.")
    params = [_read_params(file) for file in files]
    if config.get("model_kind") == "cross_layer_transcoder":
        return _gemma_scope_2_clt(params, files, ct_config(config))
    layers = [layer_from_params(p, str(f), enc_in_first=f.suffix == ".npz") for p, f in zip(params, files)]
    return assemble_plt(layers, str(folder), ct_config(config))


def _layer_refs(folder: Path, entries) -> list[str]:
    if not isinstance(entries, list):
        raise AttrWidgetsError(f"{folder / 'config.yaml'}: `transcoders` must be a list of file paths.")
    by_layer = {}
    for index, entry in enumerate(entries):
        if isinstance(entry, str):
            layer, ref = index, entry
        elif isinstance(entry, dict) and isinstance(entry.get("filepath"), str):
            layer, ref = int(entry.get("layer", index)), entry["filepath"]
        else:
            raise AttrWidgetsError(f"{folder / 'config.yaml'}: transcoders entry {index} is {entry!r}; expected "
                                   "a path / hf:// URI or a {layer, filepath} record.")
        if layer in by_layer:
            raise AttrWidgetsError(f"{folder / 'config.yaml'} lists layer {layer} twice.")
        by_layer[layer] = ref
    if sorted(by_layer) != list(range(len(by_layer))):
        raise AttrWidgetsError(f"{folder / 'config.yaml'} lists layers {sorted(by_layer)[:8]}...: every layer "
                               f"0..{max(by_layer)} needs a file.")
    return [by_layer[layer] for layer in range(len(by_layer))]


def _resolve(folder: Path, ref: str) -> Path | None:
    if ref.startswith("hf://"):
        parsed = urlparse(ref)
        parts = [parsed.netloc, *parsed.path.strip("/").split("/")]
    else:
        direct = Path(ref).expanduser()
        if direct.is_absolute() and direct.is_file():
            return direct
        parts = list(Path(ref).parts)
    for start in range(len(parts)):
        candidate = folder.joinpath(*parts[start:])
        if candidate.is_file():
            return candidate
    return None


def _read_params(file: Path) -> dict:
    if file.suffix == ".npz":
        import numpy as np

        try:
            with np.load(file, allow_pickle=False) as arrays:
                return {k: torch.from_numpy(np.array(arrays[k])) for k in arrays.files}
        except (ValueError, OSError) as exc:
            raise AttrWidgetsError(f"{file} is not a readable .npz file ({exc}).") from exc
    return read_safetensors(file)


def _gemma_scope_2_clt(params: list[dict], files: list[Path], config: dict) -> Transcoder:
    """GemmaScope-2 cross-layer files: w_enc [D, F], w_dec [F, L, D] (every layer), b_enc, b_dec, threshold."""
    L = len(params)
    W_enc, b_enc, b_dec, threshold, W_dec = [], [], [], [], []
    for layer, (p, file) in enumerate(zip(params, files)):
        missing = [k for k in ("w_enc", "w_dec", "b_enc", "b_dec", "threshold") if k not in p]
        if missing:
            raise AttrWidgetsError(f"{file} lacks {', '.join(missing)} (has {sorted(p)[:8]}): not a GemmaScope-2 "
                                   "cross-layer file.")
        if p["w_dec"].dim() != 3 or p["w_dec"].shape[1] != L:
            raise AttrWidgetsError(f"{file}: w_dec has shape {tuple(p['w_dec'].shape)}, expected "
                                   f"[features, {L}, d_model].")
        W_enc.append(p["w_enc"].t().contiguous())
        W_dec.append(p["w_dec"][:, layer:, :].contiguous())
        b_enc.append(p["b_enc"].reshape(-1))
        b_dec.append(p["b_dec"].reshape(-1))
        threshold.append(p["threshold"].reshape(-1))
    return Transcoder("clt", "jumprelu", W_enc, b_enc, W_dec, b_dec, threshold, None, None, config)
