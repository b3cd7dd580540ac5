"""Which loss trains a head: the head names it (`loss_name`, see models/head_protocol.py), this builds it."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

LOGGER = logging.getLogger("yolo")
V8_HYP = Path(__file__).resolve().parents[1] / "data" / "hyps" / "hyp.v8.yaml"


def _yolov5(head: Any, hyp: dict, nc: int, imgsz: int, label_smoothing: float | None) -> Callable:
    from utils.loss import ComputeLoss, scale_loss_hyp

    return ComputeLoss(head, scale_loss_hyp(hyp, head.nl, nc, imgsz, label_smoothing))


def _tal(head: Any, hyp: dict, nc: int, imgsz: int, label_smoothing: float | None) -> Callable:
    from utils.hyp import load_hyp
    from utils.loss_v8 import V8DetectionLoss

    if "dfl" not in hyp:  # a YOLOv5 hyp file: its box gain (0.05) is for another loss; take this family's gains
        gains = {k: load_hyp(V8_HYP)[k] for k in ("box", "cls", "dfl")}
        LOGGER.info(f"hyp has no 'dfl' gain (a YOLOv5 hyp file); the anchor-free loss uses {gains} from {V8_HYP.name}")
        hyp = {**hyp, **gains}
    return V8DetectionLoss(head, hyp)


def _dense(head: Any, hyp: dict, nc: int, imgsz: int, label_smoothing: float | None) -> Callable:
    """The mmdetection families (models/dense_heads): their loss terms and weights come from the head's head_cfg."""
    from utils.loss_dense import DenseFamilyLoss

    if label_smoothing:
        LOGGER.info(f"--label-smoothing {label_smoothing} is not used by the {head.loss_name} loss (mmdet has none)")
    return DenseFamilyLoss(head, hyp)


LOSSES: dict[str, Callable[..., Callable]] = {"yolov5": _yolov5, "tal": _tal, "retina": _dense, "fcos": _dense,
                                              "atss": _dense, "gfl": _dense, "yolox": _dense}


def make_loss(head: Any, hyp: dict, nc: int, imgsz: int, label_smoothing: float | None = None) -> Callable:
    """The training loss for `head` (callable (raw preds, targets) -> (total x batch size, 3 detached items))."""
    name = getattr(head, "loss_name", "yolov5")
    if name not in LOSSES:
        raise KeyError(f"no loss named '{name}' for head {type(head).__name__}; known: {sorted(LOSSES)}")
    return LOSSES[name](head, hyp, nc, imgsz, label_smoothing)
