"""Models: YAML graph (`Model`, `parse_model`), building blocks, checkpoints (`load_model`)."""
from __future__ import annotations

from pathlib import Path

import torch

from utils.cli import UserFileNotFoundError, UserValueError

__all__ = ["load_model", "Model", "save_checkpoint"]


def __getattr__(name: str):
    # Lazy re-exports keep `import models` light and free of import cycles.
    if name == "Model":
        from models.yolo import Model
        return Model
    if name == "save_checkpoint":
        from models.checkpoint import save_checkpoint
        return save_checkpoint
    raise AttributeError(name)


def load_checkpoint_dict(path: str | Path) -> dict:
    """{'yaml', 'state_dict', 'names', 'stride', ...} from our checkpoint or an official ultralytics .pt."""
    from models.checkpoint import read_checkpoint
    from models.official import is_official, read_official
    from models.ultralytics_import import is_ultralytics8, read_ultralytics8

    if not Path(path).is_file():
        raise UserFileNotFoundError(f"weights not found: {path}")
    if is_ultralytics8(path):
        return read_ultralytics8(path)
    return read_official(path) if is_official(path) else read_checkpoint(path)


def model_from_checkpoint(ckpt: dict, source: str = "<checkpoint>"):
    """Rebuild the Model from a checkpoint dict and load its tensors (strict: every name and shape must fit)."""
    from models.checkpoint import CheckpointError
    from models.yolo import Model

    model = Model(ckpt["yaml"])
    sd = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise CheckpointError(f"{source}: weights do not fit the model built from its YAML: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}, shape mismatch {wrong[:5]}")
    model.load_state_dict(sd)
    model.names = list(ckpt.get("names") or model.names)
    return model


def load_model(path: str | Path, device: str | torch.device = "cpu", fuse: bool = False,
               cfg: str | Path | None = None):
    """A Model in eval mode, float32, from our checkpoint, an official YOLOv5 or ultralytics 8 .pt (no code from
    the file runs), or a Darknet .weights file with its `cfg`."""
    if Path(path).suffix == ".weights" or cfg is not None:
        if cfg is None:
            raise UserValueError(f"{path}: a Darknet .weights file needs its cfg (load_model(path, cfg='yolov4.cfg'))")
        from models.darknet_cfg import model_from_cfg
        from utils.darknet_weights import load_weights

        model = model_from_cfg(cfg)
        load_weights(model, path)
    else:
        model = model_from_checkpoint(load_checkpoint_dict(path), str(path))
    model = model.to(device).eval()
    return model.fuse() if fuse else model
