"""The pieces every public transcoder layout is read with (core/graph/transcoder_io.py, transcoder_hub.py):
safetensors files, one layer's tensors under our names whatever the naming and orientation, a per-layer set
assembled into a Transcoder, and circuit-tracer's config keys kept beside it.
"""

from __future__ import annotations

from pathlib import Path

from attrwidgets.core.graph.transcoder import Transcoder
from attrwidgets.core.graph.transcoder_write import ACCEPTED
from attrwidgets.errors import AttrWidgetsError


def ct_config(config: dict) -> dict:
    extra = dict(config.get("attrwidgets") or {})
    extra.setdefault("hooks", {"feature_input_hook": config.get("feature_input_hook"),
                               "feature_output_hook": config.get("feature_output_hook")})
    if config.get("scan") is not None:
        extra.setdefault("scan", config["scan"])
    return extra


def read_safetensors(file: Path) -> dict:
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
