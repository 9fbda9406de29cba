"""Training checkpoints: one safetensors file (module + Adam state, settings in its metadata), atomically.

The file is written under a temporary name and renamed over the previous one (os.replace is atomic), so an
interrupt at any moment leaves either the old checkpoint or the new one, never half of one. The checkpoint
is deleted once the finished transcoder is saved next to it; aw.load_transcoder also reads a folder that
holds only a checkpoint (an interrupted run), exporting the transcoder as it was at that step.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from attrwidgets.core.files import atomic_path, file_reader
from attrwidgets.core.graph import transcoder_io
from attrwidgets.core.graph.train_model import TrainableTranscoder, TrainSettings, threshold_switch
from attrwidgets.core.graph.transcoder_write import check_shapes
from attrwidgets.errors import AttrWidgetsError

CHECKPOINT = "checkpoint.safetensors"
_META_KEY = "attrwidgets_checkpoint"


def write(folder: Path, module, optimizer, step: int, settings, model_info: dict) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"module.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"adam.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    meta = {"version": 1, "step": step, "settings": asdict(settings), "model": model_info}
    target = folder / CHECKPOINT
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(meta)})
    return target


def _meta(path: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {})[_META_KEY])
    except (KeyError, ValueError, OSError) as exc:
        raise AttrWidgetsError(f"{path} is not an attrwidgets training checkpoint ({exc}): delete it or pass "
                               "resume=False.") from exc


def read(folder: Path, settings, model_info: dict) -> dict | None:
    """The checkpoint to resume from (None: start fresh), or {"finished": True} when the folder already holds
    the transcoder these settings would train. Refuses a checkpoint made with other settings or model."""
    path = folder / CHECKPOINT
    if not path.exists():
        return _finished(folder, settings, model_info)
    meta = _meta(path)
    _same_run(meta.get("settings", {}), meta.get("model", {}), settings, model_info, path)
    return {"path": path, "meta": meta}


def _same_run(saved_settings: dict, saved_model: dict, settings, model_info: dict, path: Path) -> None:
    model_keys = ("id", "n_layers", "d_model")
    differ = [f"model {k}" for k in model_keys if saved_model.get(k) != model_info.get(k)]
    differ += settings.matches(saved_settings)
    if differ:
        raise AttrWidgetsError(
            f"{path} was made with other settings ({', '.join(differ)} differ): pass resume=False to start "
            "over (it will be overwritten), or another save folder.")


def _finished(folder: Path, settings, model_info: dict) -> dict | None:
    config = folder / "config.json"
    if not config.exists():
        return None
    try:
        saved = json.loads(config.read_text())
    except ValueError:
        return None
    training, model = saved.get("config", {}).get("training", {}), saved.get("config", {}).get("model", {})
    same = (not settings.matches(training) and training.get("steps") == settings.steps
            and all(model.get(k) == model_info.get(k) for k in ("id", "n_layers", "d_model")))
    return {"finished": True} if same else None


def restore(state: dict, module, optimizer) -> int:
    """Load module and Adam state; returns the step to continue from."""
    from safetensors.torch import load_file

    tensors = load_file(str(state["path"]))
    device = next(module.parameters()).device
    module.load_state_dict({k[len("module."):]: v for k, v in tensors.items() if k.startswith("module.")})
    current = optimizer.state_dict()
    adam: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("adam."):
            _, index, name = key.split(".", 2)
            adam.setdefault(int(index), {})[name] = value if name == "step" else value.to(device)
    optimizer.load_state_dict({"state": adam, "param_groups": current["param_groups"]})
    return int(state["meta"]["step"])


def finish(folder: Path) -> None:
    (folder / CHECKPOINT).unlink(missing_ok=True)


def transcoder_from_checkpoint(path: Path):
    """The transcoder as it was at the checkpoint's step (for a run that was interrupted)."""
    from safetensors.torch import load_file

    meta = _meta(path)
    s, model = meta["settings"], meta["model"]
    module = TrainableTranscoder(s["kind"], s["activation"], model["n_layers"], model["d_model"], s["n_features"],
                                 top_k=s["top_k"], skip=s["skip"], bandwidth=s["bandwidth"])
    tensors = load_file(str(path))
    module.load_state_dict({k[len("module."):]: v for k, v in tensors.items() if k.startswith("module.")})
    if meta["step"] < threshold_switch(TrainSettings(**s)):
        module.begin_threshold_learning()  # still in the steered phase: its per-layer thresholds are current
    return module.export({"model": model, "training": {**s, "checkpoint_step": meta["step"]}})


@file_reader('a transcoder folder (config.json or config.yaml with safetensors)',
             "Pass a folder written by Transcoder.save() or aw.train_transcoder(save=...), or a circuit-tracer "
             "transcoder folder")
def load_transcoder(folder, device=None, dtype: torch.dtype | None = None):
    """aw.load_transcoder: every layout core/graph/transcoder_io.py reads, and the folder of an interrupted
    aw.train_transcoder run, which holds only its checkpoint (the transcoder as it was at that step)."""
    path = Path(folder).expanduser()
    if path.is_dir() and (path / CHECKPOINT).exists() and not transcoder_io.has_layout(path):
        tc = transcoder_from_checkpoint(path / CHECKPOINT)
        check_shapes(tc, str(path))
        return tc.to(device, dtype) if (device is not None or dtype is not None) else tc
    return transcoder_io.load_transcoder(folder, device, dtype)
