"""The configuration of a dense head row: utils/dense's family config (defaults merged with a YAML's `head_cfg`),
with the checks of what the nn.Module builds from it (stacked_convs, feat_channels) and its level strides.

A head row reads `[nc]` or `[nc, head_cfg]`, where `head_cfg` names a top-level YAML mapping (or is written
inline) in mmdetection's structure; the defaults per family and the merge rule are utils/dense's
(`utils.dense.families.head_config`, each family's DEFAULTS, `utils.dense.head_config.merge_cfg`). Errors are
ValueErrors naming the key path (parse_model adds the file and the row).
"""
from __future__ import annotations

from typing import Any

from utils.cli import UserError
from utils.dense.families import head_config as family_head_config


def head_config(family: str, nc: int, in_channels: int, user: dict | None, where: str = "head_cfg") -> dict:
    """The full mmdet-style head dict (num_classes, in_channels, every default) with `user` merged in."""
    try:
        cfg = family_head_config(family, nc, in_channels, user, where)
    except UserError as e:
        raise ValueError(e.args[0] if e.args else str(e)) from None
    for key in ("stacked_convs", "feat_channels"):
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < (1 if key == "feat_channels" else 0):
            raise ValueError(f"{where}.{key}: must be a positive int, got {cfg[key]!r}")
    return cfg


def level_strides(cfg: dict[str, Any]) -> list[int]:
    """The strides the config's prior generator names (anchor_generator.strides or strides)."""
    gen = cfg.get("anchor_generator")
    return list(gen["strides"]) if gen else list(cfg["strides"])
