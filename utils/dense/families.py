"""The head families by their mmdetection class name: build_family(head_cfg) picks the math class by `type`;
head_config(family, ...) is a family's full head config (its DEFAULTS with a YAML's head_cfg merged, see
utils/dense/head_config.py), the one the nn.Module heads of models/dense_heads are built from."""
from __future__ import annotations

from typing import Any, Mapping

from utils.cli import UserKeyError, UserValueError
from utils.dense.atss import ATSSMath
from utils.dense.fcos import FCOSMath
from utils.dense.gfl import GFLMath
from utils.dense.head_config import head_defaults
from utils.dense.retina import RetinaMath
from utils.dense.yolox import YOLOXMath

FAMILIES = {"RetinaHead": RetinaMath, "ATSSHead": ATSSMath, "GFLHead": GFLMath, "FCOSHead": FCOSMath,
            "YOLOXHead": YOLOXMath}


def build_family(head_cfg: Mapping[str, Any], where: str = "head_cfg") -> Any:
    """The loss/assign/predict math of the head that head_cfg['type'] names."""
    return family_class(head_cfg.get("type"), where)(head_cfg, where)


def family_class(name: Any, where: str = "head_cfg") -> Any:
    """The math class of the family `name` (a clear error for an unknown one)."""
    if name not in FAMILIES:
        raise UserKeyError(f"{where}.type: unknown dense head {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def head_config(family: str, nc: int, in_channels: int, given: Mapping[str, Any] | None,
                where: str = "head_cfg") -> dict:
    """The full mmdet-style head dict (type, num_classes, in_channels, every default) with `given` merged in;
    `given` may set any key of the family's DEFAULTS but num_classes (the row's nc)."""
    if given is not None and not isinstance(given, Mapping):
        raise UserValueError(f"{where}: must be a mapping in mmdetection's head structure, got {given!r}")
    defaults = family_class(family, where).DEFAULTS
    known = tuple(k for k in defaults if k != "num_classes")
    cfg = head_defaults(defaults, dict(given or {}), family, known, where)
    return {**cfg, "num_classes": nc, "in_channels": in_channels}
