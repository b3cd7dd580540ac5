"""The head families by their mmdetection class name: build_family(head_cfg) picks the math class by `type`."""
from __future__ import annotations

from typing import Any, Mapping

from utils.cli import UserKeyError
from utils.dense.atss import ATSSMath
from utils.dense.fcos import FCOSMath
from utils.dense.gfl import GFLMath
from utils.dense.retina import RetinaMath
from utils.dense.yolox import YOLOXMath

FAMILIES = {"RetinaHead": RetinaMath, "ATSSHead": ATSSMath, "GFLHead": GFLMath, "FCOSHead": FCOSMath,
            "YOLOXHead": YOLOXMath}


def build_family(head_cfg: Mapping[str, Any], where: str = "head_cfg") -> Any:
    """The loss/assign/predict math of the head that head_cfg['type'] names."""
    name = head_cfg.get("type")
    if name not in FAMILIES:
        raise UserKeyError(f"{where}.type: unknown dense head {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name](head_cfg, where)
