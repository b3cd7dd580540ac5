"""mmdetection 3.3 dense-head weights -> the heads of models/dense_heads (RetinaHead, FCOSHead, ATSSHead, GFLHead,
YOLOXHead), and a head built from an mmdet head config dict.

The heads name their submodules as mmdet does (`cls_convs.0.conv`, `.gn` / `.bn`, `retina_cls`, `scales.0.scale`,
`multi_level_conv_obj.2`, ...), so the key map is the identity with two exceptions: GFL's `integral.project`
buffer (the fixed bins 0..reg_max, checked and dropped: the head computes them) and a `prefix` for a head that
sits in a YAML model (`model.<row>.`). Shapes must match exactly; missing or unexpected keys are errors.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

import models.dense_heads  # noqa: F401
from models.dense_heads.base import head_config
from models.registry import MODULES

FIXED = ("integral.project",)


class MmdetImportError(ValueError):
    """An mmdet state_dict that does not fit the head; the message names the keys."""


def head_from_mmdet_config(cfg: dict[str, Any]) -> nn.Module:
    """A head built from an mmdet head dict ({type, num_classes, in_channels, ...}) with the same settings."""
    cfg = dict(cfg)
    family, nc, ch = cfg.pop("type"), cfg.pop("num_classes"), cfg.pop("in_channels")
    full = head_config(family, nc, ch, cfg)
    cls = MODULES.get(family).cls
    n_levels = len(full["anchor_generator"]["strides"] if "anchor_generator" in full else full["strides"])
    return cls(nc, [ch] * n_levels, full)


def convert_state_dict(sd: dict[str, torch.Tensor], head: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """mmdet head keys -> this head's (with `prefix`), checked for shape; fixed buffers verified and dropped."""
    own = head.state_dict()
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k in FIXED:
            want = torch.arange(v.numel(), dtype=v.dtype)
            if not torch.equal(v, want):
                raise MmdetImportError(f"{k}: expected the bins 0..{v.numel() - 1}, got {v.tolist()}")
            continue
        if k not in own:
            raise MmdetImportError(f"mmdet key {k!r} has no place in {type(head).__name__}")
        if own[k].shape != v.shape:
            raise MmdetImportError(f"{k}: mmdet shape {tuple(v.shape)} but the head has {tuple(own[k].shape)} "
                                   f"(num_classes, feat_channels or stacked_convs differ)")
        out[prefix + k] = v
    missing = sorted(set(own) - {k[len(prefix):] for k in out})
    if missing:
        raise MmdetImportError(f"the mmdet state_dict lacks {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return out


def load_mmdet_head(head: nn.Module, sd: dict[str, torch.Tensor]) -> nn.Module:
    """Load an mmdet head state_dict into `head` (strict)."""
    head.load_state_dict(convert_state_dict(sd, head), strict=True)
    return head
