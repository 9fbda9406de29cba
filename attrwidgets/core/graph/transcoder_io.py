"""Save and load transcoders: our layout, and the public layouts circuit-tracer reads (RECIPES.md).

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
- a folder holding only a training checkpoint (an interrupted aw.train_transcoder run).
No pickle anywhere: safetensors, JSON, YAML (safe_load) and .npz read with allow_pickle=False.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from attrwidgets.core.files import atomic_path, file_reader, write_text_atomic
from attrwidgets.core.graph.transcoder import Transcoder
from attrwidgets.errors import AttrWidgetsError

SCHEMA = "attrwidgets.transcoder"
VERSION = 1
WEIGHTS = "transcoder.safetensors"
FORMATS = ("attrwidgets", "circuit-tracer")
ACCEPTED = (
    "attrwidgets (config.json + transcoder.safetensors, written by Transcoder.save); circuit-tracer per-layer "
    "(config.yaml with model_kind: transcoder_set + layer_{i}.safetensors); circuit-tracer cross-layer "
    "(config.yaml with model_kind: cross_layer_transcoder + W_enc_{i}/W_dec_{i}.safetensors); a hub "
    "config.yaml whose `transcoders:` list names one file per layer (.npz or .safetensors) found in the "
    "folder; a training checkpoint (checkpoint.safetensors)")


# -- saving ------------------------------------------------------------------------------------------
def save_transcoder(tc: Transcoder, folder, format: str = "attrwidgets", dtype: torch.dtype | None = None) -> Path:
    """Write `tc` into `folder` (created). format="circuit-tracer" writes the layout circuit-tracer loads from
    its cache (per-layer or cross-layer, JumpReLU or ReLU). dtype: store e.g. torch.bfloat16 to halve the size."""
    if format not in FORMATS:
        raise AttrWidgetsError(f"Unknown transcoder format {format!r}: use one of {', '.join(FORMATS)}.")
    check_shapes(tc, "this transcoder")
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    tc = tc.to("cpu", dtype)
    if format == "attrwidgets":
        _write_tensors(folder / WEIGHTS, _our_tensors(tc))
        header = {"schema": SCHEMA, "version": VERSION, "kind": tc.kind, "activation": tc.activation,
                  "n_layers": tc.n_layers, "d_model": tc.d_model, "n_features": tc.n_features, "top_k": tc.top_k,
                  "skip": tc.W_skip is not None, "dtype": str(tc.W_enc[0].dtype).replace("torch.", ""),
                  "weights": WEIGHTS, "config": tc.config}
        write_text_atomic(folder / "config.json", json.dumps(header, indent=1))  # last: its presence means complete
        return folder
    if tc.activation == "topk":
        raise AttrWidgetsError("circuit-tracer's file formats have no TopK transcoders: save this one with "
                               "format='attrwidgets'.")
    if tc.kind == "plt":
        for layer in range(tc.n_layers):
            tensors = {"W_enc": tc.W_enc[layer], "b_enc": tc.b_enc[layer], "W_dec": tc.W_dec[layer],
                       "b_dec": tc.b_dec[layer]}
            if tc.activation == "jumprelu":
                tensors["activation_function.threshold"] = tc.threshold[layer]
            if tc.W_skip is not None:
                tensors["W_skip"] = tc.W_skip[layer]
            _write_tensors(folder / f"layer_{layer}.safetensors", tensors)
    else:
        for layer in range(tc.n_layers):
            enc = {f"W_enc_{layer}": tc.W_enc[layer], f"b_enc_{layer}": tc.b_enc[layer],
                   f"b_dec_{layer}": tc.b_dec[layer]}
            if tc.activation == "jumprelu":
                enc[f"threshold_{layer}"] = tc.threshold[layer]
            _write_tensors(folder / f"W_enc_{layer}.safetensors", enc)
            _write_tensors(folder / f"W_dec_{layer}.safetensors", {f"W_dec_{layer}": tc.W_dec[layer]})
    hooks = tc.config.get("hooks", {})
    model = tc.config.get("model", {})
    config = {"model_kind": "transcoder_set" if tc.kind == "plt" else "cross_layer_transcoder",
              "model_name": model.get("id", "unknown"),
              "feature_input_hook": hooks.get("feature_input_hook", "mlp.hook_in"),
              "feature_output_hook": hooks.get("feature_output_hook", "mlp.hook_out"),
              "scan": tc.config.get("scan", f"attrwidgets/{model.get('id', 'model')}-{tc.kind}"),
              "attrwidgets": json.loads(json.dumps(tc.config))}
    import yaml

    write_text_atomic(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    return folder


def _our_tensors(tc: Transcoder) -> dict:
    tensors = {}
    for layer in range(tc.n_layers):
        tensors[f"W_enc.{layer}"] = tc.W_enc[layer]
        tensors[f"b_enc.{layer}"] = tc.b_enc[layer]
        tensors[f"W_dec.{layer}"] = tc.W_dec[layer]
        tensors[f"b_dec.{layer}"] = tc.b_dec[layer]
        if tc.threshold is not None:
            tensors[f"threshold.{layer}"] = tc.threshold[layer]
        if tc.W_skip is not None:
            tensors[f"W_skip.{layer}"] = tc.W_skip[layer]
    return tensors


def _write_tensors(path: Path, tensors: dict) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(tmp))


# -- loading -----------------------------------------------------------------------------------------
@file_reader('a transcoder folder (config.json or config.yaml with safetensors)',
             "Pass a folder written by Transcoder.save() or aw.train_transcoder(save=...), or a circuit-tracer "
             "transcoder folder")
def load_transcoder(folder, device=None, dtype: torch.dtype | None = None) -> Transcoder:
    """Read a transcoder folder in any accepted layout (module docstring). Checks the files' internal
    consistency only; the graph calls transcoder.check_model(...) against the model."""
    path = Path(folder).expanduser()
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
    elif (path / "checkpoint.safetensors").exists():
        from attrwidgets.core.graph.checkpoint import transcoder_from_checkpoint

        tc = transcoder_from_checkpoint(path / "checkpoint.safetensors")
    else:
        found = sorted(p.name for p in path.iterdir())[:12]
        raise AttrWidgetsError(f"{path} holds no transcoder layout I know (found: {found or 'nothing'}). "
                               f"Accepted layouts: {ACCEPTED}.")
    check_shapes(tc, str(path))
    return tc.to(device, dtype) if (device is not None or dtype is not None) else tc


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
    tensors = _read_safetensors(path / header.get("weights", WEIGHTS))
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
        from attrwidgets.core.graph.transcoder_hub import load_listed

        return load_listed(path, config)
    return _load_ct_plt(path, config) if kind == "transcoder_set" else _load_ct_clt(path, config)


def _ct_config(config: dict) -> dict:
    extra = dict(config.get("attrwidgets") or {})
    extra.setdefault("hooks", {"feature_input_hook": config.get("feature_input_hook"),
                               "feature_output_hook": config.get("feature_output_hook")})
    if config.get("scan") is not None:
        extra.setdefault("scan", config["scan"])
    return extra


def _numbered(path: Path, pattern: str) -> int:
    """How many files 0..n-1 match pattern; raises if the numbering has gaps."""
    numbers = sorted(int(m.group(1)) for p in path.iterdir() if (m := re.fullmatch(pattern, p.name)))
    if numbers and numbers != list(range(len(numbers))):
        missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
        label = pattern.replace("(\\d+)", "{i}").replace("\\", "")
        raise AttrWidgetsError(f"{path} has {label} files for layers {numbers[:6]}... but none for layers "
                               f"{missing[:8]}: every layer needs one.")
    return len(numbers)


def _read_safetensors(file: Path) -> dict:
    from safetensors.torch import load_file

    if not file.exists():
        raise AttrWidgetsError(f"{file} is missing: the transcoder folder is incomplete.")
    try:
        return load_file(str(file))
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupt files
        raise AttrWidgetsError(f"{file} is not a readable safetensors file ({exc}).") from exc


def layer_from_params(params: dict, where: str, *, enc_in_first: bool = False) -> dict:
    """One per-layer transcoder's tensors under our names, whatever public naming and orientation they use:
    W_enc/W_dec [F, D] (circuit-tracer), W_enc [D, F] (GemmaScope .npz: enc_in_first), w_enc/w_dec/threshold/
    affine_skip_connection (GemmaScope-2)."""
    lower = "w_enc" in params and "W_enc" not in params
    get = (lambda k: params.get(k.lower(), params.get(k))) if lower else params.get
    W_enc, W_dec, b_enc, b_dec = get("W_enc"), get("W_dec"), get("b_enc"), get("b_dec")
    missing = [k for k, v in (("W_enc", W_enc), ("W_dec", W_dec), ("b_enc", b_enc), ("b_dec", b_dec)) if v is None]
    if missing:
        raise AttrWidgetsError(f"{where} lacks {', '.join(missing)} (has {sorted(params)[:10]}). "
                               f"Accepted layouts: {ACCEPTED}.")
    F, D = b_enc.shape[-1], b_dec.shape[-1]
    if W_enc.dim() == 2 and (lower or enc_in_first or (F != D and tuple(W_enc.shape) == (D, F))):
        W_enc = W_enc.t()
    if W_dec.dim() == 2 and F != D and tuple(W_dec.shape) == (D, F):
        W_dec = W_dec.t()
    threshold = params.get("activation_function.threshold", params.get("threshold"))
    skip = params.get("W_skip")
    if skip is None and params.get("affine_skip_connection") is not None:
        skip = params["affine_skip_connection"].t()
    return {"W_enc": W_enc.contiguous(), "b_enc": b_enc.reshape(-1), "W_dec": W_dec.contiguous(),
            "b_dec": b_dec.reshape(-1), "threshold": None if threshold is None else threshold.reshape(-1),
            "W_skip": None if skip is None else skip.contiguous()}


def assemble_plt(layers: list[dict], where: str, config: dict) -> Transcoder:
    has_thr = [lay["threshold"] is not None for lay in layers]
    has_skip = [lay["W_skip"] is not None for lay in layers]
    for name, flags in (("a threshold", has_thr), ("a skip connection (W_skip)", has_skip)):
        if any(flags) and not all(flags):
            raise AttrWidgetsError(f"{where}: layers {[i for i, f in enumerate(flags) if f][:8]} have {name} and "
                                   f"layers {[i for i, f in enumerate(flags) if not f][:8]} do not.")

    def column(name):
        return [lay[name] for lay in layers]

    return Transcoder("plt", "jumprelu" if all(has_thr) else "relu", column("W_enc"), column("b_enc"),
                      column("W_dec"), column("b_dec"), column("threshold") if all(has_thr) else None,
                      column("W_skip") if all(has_skip) else None, None, config)


def _load_ct_plt(path: Path, config: dict) -> Transcoder:
    n = _numbered(path, r"layer_(\d+)\.safetensors")
    if n == 0:
        raise AttrWidgetsError(f"{path} has a per-layer config.yaml but no layer_{{i}}.safetensors files (and no "
                               f"`transcoders:` list). Accepted layouts: {ACCEPTED}.")
    layers = [layer_from_params(_read_safetensors(path / f"layer_{i}.safetensors"), str(path / f"layer_{i}"))
              for i in range(n)]
    return assemble_plt(layers, str(path), _ct_config(config))


def _load_ct_clt(path: Path, config: dict) -> Transcoder:
    n = _numbered(path, r"W_enc_(\d+)\.safetensors")
    if n == 0:
        raise AttrWidgetsError(f"{path} has a cross-layer config.yaml but no W_enc_{{i}}.safetensors files. "
                               f"Accepted layouts: {ACCEPTED}.")
    W_enc, b_enc, b_dec, threshold, W_dec = [], [], [], [], []
    for i in range(n):
        enc = _read_safetensors(path / f"W_enc_{i}.safetensors")
        dec = _read_safetensors(path / f"W_dec_{i}.safetensors")
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
                      [t.reshape(-1) for t in threshold] if all(jump) else None, None, None, _ct_config(config))


def check_shapes(tc: Transcoder, where: str) -> None:
    """Every tensor of every layer has the shape the forward needs; says which is wrong."""
    L, F, D = tc.n_layers, tc.n_features, tc.d_model
    problems = []

    def expect(name, tensors, shape_of):
        if tensors is None:
            return
        if len(tensors) != L:
            problems.append(f"{name} has {len(tensors)} layers, W_enc {L}")
            return
        for layer, t in enumerate(tensors):
            if tuple(t.shape) != shape_of(layer):
                problems.append(f"layer {layer}: {name} has shape {tuple(t.shape)}, expected {shape_of(layer)}")

    expect("W_enc", tc.W_enc, lambda l: (F, D))
    expect("b_enc", tc.b_enc, lambda l: (F,))
    expect("W_dec", tc.W_dec, (lambda l: (F, D)) if tc.kind == "plt" else (lambda l: (F, L - l, D)))
    expect("b_dec", tc.b_dec, lambda l: (D,))
    expect("threshold", tc.threshold, lambda l: (F,))
    expect("W_skip", tc.W_skip, lambda l: (D, D))
    if problems:
        raise AttrWidgetsError(f"{where}: wrong tensor shapes for a {tc.kind.upper()} with {L} layers, {F} features, "
                               f"d_model={D}: {'; '.join(problems[:6])}.")
