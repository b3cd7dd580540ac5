"""Import ultralytics 8 `.pt` files (YOLOv8 / YOLO11 detection) without the ultralytics code and without running anything.

Such a file pickles a whole `ultralytics.nn.tasks.DetectionModel` (under `model` and/or `ema`) plus trainer
metadata (`train_args`, `date`, `version`, ...). It goes through the same restricted loader as official YOLOv5
files (models/official.py): the pickle's globals are read from its opcodes first, anything outside the
ultralytics model classes, torch.nn layers and tensor data is refused, and torch's `weights_only=True` loader
maps each allowed class to an inert stand-in that only receives its attribute dict. From the stand-ins we keep
the model's YAML (rebuilt here with its `scale`), the tensors, the class names and the strides.
"""
from __future__ import annotations

from pathlib import Path

import torch

from models.checkpoint import CheckpointError
from models.official import _numpy_safe, _Standin, _standins, _state_dict, pickle_globals

PREFIXES = ("ultralytics.nn.modules.", "ultralytics.nn.tasks.", "torch.nn.modules.", "argparse.Namespace",
            "types.SimpleNamespace")
PLAIN_KEYS = ("epoch", "date", "version", "updates", "best_fitness")


def is_ultralytics8(path: str | Path) -> bool:
    """True for a torch zip file whose pickle names ultralytics 8 model classes."""
    try:
        return any(g.startswith("ultralytics.nn.") for g in pickle_globals(path))
    except CheckpointError:
        return False


def read_ultralytics8(path: str | Path) -> dict:
    """{'yaml', 'state_dict', 'names', 'stride', 'meta'} from an ultralytics 8 detection checkpoint."""
    path = Path(path)
    standins = _standins(pickle_globals(path), path, PREFIXES)
    with torch.serialization.safe_globals(standins + _numpy_safe()):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else None
    if not isinstance(model, _Standin) or not isinstance(model.__dict__.get("yaml"), dict):
        raise CheckpointError(f"{path}: no ultralytics model with a YAML found under 'ema' or 'model'")
    if getattr(model, "_origin", "") != "ultralytics.nn.tasks.DetectionModel":
        raise CheckpointError(f"{path}: {getattr(model, '_origin', type(model).__name__)} is not a detection model "
                              f"(only ultralytics.nn.tasks.DetectionModel is imported)")
    attrs = model.__dict__
    names = attrs.get("names", {})
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    stride = attrs.get("stride")
    yaml = {k: v for k, v in attrs["yaml"].items() if k not in ("yaml_file", "channels")}
    yaml["ch"] = attrs["yaml"].get("channels", 3)
    meta = {k: ckpt[k] for k in PLAIN_KEYS if isinstance(ckpt.get(k), (int, float, str))}
    meta["source_format"] = "ultralytics8"
    return {"yaml": yaml, "state_dict": _state_dict(model), "names": names,
            "stride": stride.tolist() if isinstance(stride, torch.Tensor) else stride, "meta": meta}
