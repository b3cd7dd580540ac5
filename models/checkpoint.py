"""Safe checkpoints: the model's YAML dict + a state_dict + plain metadata, loadable with weights_only=True.

Format (a dict saved with torch.save):
    format: "yolo-yaml/1"       marks our files
    yaml: dict                  the model YAML (rebuilt with Model(yaml))
    state_dict: {name: tensor}  the weights to use for inference (the EMA weights during training)
    names: list[str]            class names
    stride: list[float]
    meta: dict                  date, torch version, anything plain
  and, for training checkpoints, plain extra keys (epoch, optimizer state, hyp, options, ...).
Writes are atomic: a temporary file in the same folder, then os.replace.
"""
from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from utils.cli import UserFileNotFoundError, UserValueError

FORMAT = "yolo-yaml/1"


class CheckpointError(UserValueError):
    """A file that is not a loadable checkpoint; the message names the file and the reason."""


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save to a temporary file next to `path`, then rename over it (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files owner-only; a checkpoint is an ordinary readable file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def plain_state_dict(model: nn.Module, half: bool = False) -> dict[str, torch.Tensor]:
    """Detached CPU copies of a state_dict (floating tensors optionally stored as float16)."""
    out = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().clone()
        out[k] = v.half() if half and v.is_floating_point() else v
    return out


def make_checkpoint(model: nn.Module, names: list[str] | None = None, half: bool = False,
                    state_dict: dict | None = None, **extra: Any) -> dict:
    """The checkpoint dict of a Model (`state_dict` overrides the model's own weights, e.g. with EMA ones)."""
    return {
        "format": FORMAT,
        "yaml": model.yaml,
        "state_dict": state_dict if state_dict is not None else plain_state_dict(model, half),
        "names": list(names if names is not None else getattr(model, "names", [])),
        "stride": [float(s) for s in model.stride],
        "meta": {"date": datetime.datetime.now().isoformat(timespec="seconds"), "torch": str(torch.__version__)},
        **extra,
    }


def save_checkpoint(path: str | Path, model: nn.Module, names: list[str] | None = None, half: bool = False,
                    **extra: Any) -> Path:
    """Write a checkpoint atomically; extra keyword args must be plain data or tensors."""
    return atomic_save(make_checkpoint(model, names, half, **extra), path)


def read_checkpoint(path: str | Path) -> dict:
    """Load and validate one of our checkpoints (weights_only: no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise UserFileNotFoundError(f"checkpoint not found: {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint (keys: {list(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__})")
    for key in ("yaml", "state_dict", "names"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: checkpoint lacks '{key}'")
    return ckpt
