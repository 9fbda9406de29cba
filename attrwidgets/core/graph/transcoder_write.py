"""Writing transcoders (Transcoder.save): our layout and circuit-tracer's, and the shape check every layout
shares. Writers read the transcoder's attributes only, so transcoder.py calls them without an import cycle;
core/graph/transcoder_io.py reads every layout back (its docstring lists them).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from attrwidgets.core.files import atomic_path, write_text_atomic
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
def save_transcoder(tc, folder, format: str = "attrwidgets", dtype: torch.dtype | None = None) -> Path:
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


def _our_tensors(tc) -> dict:
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


def check_shapes(tc, where: str) -> None:
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
