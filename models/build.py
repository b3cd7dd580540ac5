"""The one place a model is built. Every script and tool gets its `Model` here:

- `model_from_cfg(cfg)`: a model YAML (ours, YOLOv5's, ultralytics 8's; a path, a zoo name or a dict) or a
  Darknet .cfg, freshly initialised;
- `model_from_checkpoint(ckpt)` / `model_from_weights(path, cfg)`: our checkpoints, official YOLOv5 and
  ultralytics 8 .pt files (read without running code from them), Darknet .cfg + .weights;
- `load_model(path)`: the same, on a device, in eval mode, optionally fused (inference);
- `training_model(cfg, weights, nc)`: the model a training run starts from (--cfg and/or --weights).

Weight transfer (`utils.train.transfer.transfer_weights`), backbone weights (`load_backbone_weights`) and freezing
(`utils.freeze.freeze_layers`) are separate steps that callers compose.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utils.cli import UserFileNotFoundError, UserValueError

LOGGER = logging.getLogger("yolo")
DARKNET_CFG_SUFFIX = ".cfg"
DARKNET_WEIGHTS_SUFFIX = ".weights"


def is_darknet_cfg(cfg: Any) -> bool:
    return isinstance(cfg, (str, Path)) and str(cfg).lower().endswith(DARKNET_CFG_SUFFIX)


def model_from_cfg(cfg: str | Path | dict, nc: int | None = None, anchors: int | list | None = None, ch: int = 3,
                   verbose: bool = False) -> nn.Module:
    """A freshly initialised Model from a model YAML (path, zoo name or dict) or a Darknet .cfg."""
    from models.yolo import Model

    if is_darknet_cfg(cfg):
        from models.darknet_cfg import cfg_to_yaml

        d = cfg_to_yaml(cfg)
        d["yaml_file"] = str(cfg)
        cfg = d
    return Model(cfg, ch=ch, nc=nc, anchors=anchors, verbose=verbose)


def load_checkpoint_dict(path: str | Path) -> dict:
    """{'yaml', 'state_dict', 'names', 'stride', ...} from our checkpoint, an official YOLOv5 or an ultralytics 8 .pt."""
    from models.checkpoint import read_checkpoint
    from models.official import is_official, read_official
    from models.ultralytics_import import is_ultralytics8, read_ultralytics8

    if not Path(path).is_file():
        raise UserFileNotFoundError(f"weights not found: {path}")
    if is_ultralytics8(path):
        return read_ultralytics8(path)
    return read_official(path) if is_official(path) else read_checkpoint(path)


def model_from_checkpoint(ckpt: dict, source: str = "<checkpoint>") -> nn.Module:
    """Rebuild the Model from a checkpoint dict and load its tensors (strict: every name and shape must fit)."""
    from models.checkpoint import CheckpointError

    model = model_from_cfg(ckpt["yaml"])
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


def model_from_weights(path: str | Path, cfg: str | Path | None = None) -> nn.Module:
    """A Model with the weights of `path`: a checkpoint (.pt), or Darknet .weights with its .cfg."""
    if Path(path).suffix.lower() == DARKNET_WEIGHTS_SUFFIX or cfg is not None:
        if cfg is None:
            raise UserValueError(f"{path}: a Darknet .weights file needs its cfg (--cfg yolov4.cfg)")
        if not Path(path).is_file():
            raise UserFileNotFoundError(f"weights not found: {path}")
        from utils.darknet_weights import load_weights

        model = model_from_cfg(cfg)
        load_weights(model, path)
        return model
    return model_from_checkpoint(load_checkpoint_dict(path), str(path))


def load_model(path: str | Path, device: str | torch.device = "cpu", fuse: bool = False,
               cfg: str | Path | None = None) -> nn.Module:
    """A Model for inference: eval mode, float32, on `device`, fused when asked (see `model_from_weights`)."""
    model = model_from_weights(path, cfg).to(device).eval()
    return model.fuse() if fuse else model


def training_model(cfg: str | Path | dict | None, weights: str | Path | None, nc: int,
                   anchors: int | None = None) -> nn.Module:
    """The model a training run starts from: --cfg (a YAML or Darknet .cfg) and/or --weights.

    With weights, the model is built from --cfg (or the checkpoint's own YAML) and takes the checkpoint tensors
    that match by name and shape; a new --cfg or hyp anchors keep their own anchors, as YOLOv5 does."""
    from utils.train.transfer import transfer_weights

    if not cfg and not weights:
        raise UserValueError("give --cfg (a model YAML) and/or --weights (a checkpoint)")
    if not weights:
        return model_from_cfg(cfg, nc=nc, anchors=anchors)
    ckpt = load_checkpoint_dict(weights)
    model = model_from_cfg(cfg or ckpt["yaml"], nc=nc, anchors=anchors)
    exclude = ("anchor",) if (cfg or anchors) else ()
    n, total = transfer_weights(model, ckpt["state_dict"], exclude)
    LOGGER.info(f"Transferred {n}/{total} items from {weights}")
    return model


def load_backbone_weights(model: nn.Module, path: str | Path) -> None:
    """Pretrained backbone weights (the official ConvNeXt layout) into the model's ConvNeXt rows."""
    from models.convnext_weights import load_convnext_backbone

    report = load_convnext_backbone(model, path)
    LOGGER.info(f"Backbone weights {path}: {report.summary()}")
