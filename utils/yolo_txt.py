"""The one writer of YOLO-format detection rows (`cls cx cy w h [conf]`, normalised), for val.py --save-txt and
detect.py --save-txt."""
from __future__ import annotations

import numpy as np

from utils.boxes import xyxy2xywh


def detection_lines(det, shape_hw: tuple[int, int], save_conf: bool) -> list[str]:
    """Rows (n, 6) [x1, y1, x2, y2, conf, cls] (tensor or array) in the pixels of an image of `shape_hw` -> YOLO
    txt lines."""
    if not isinstance(det, np.ndarray):  # a torch tensor, maybe on an accelerator
        det = det.detach().float().cpu().numpy()
    det = det.astype(np.float32, copy=False)
    gn = np.array(shape_hw, dtype=np.float32)[[1, 0, 1, 0]]
    xywh = (xyxy2xywh(det[:, :4]) / gn).tolist()
    lines = []
    for box, conf, cls in zip(xywh, det[:, 4].tolist(), det[:, 5].tolist()):
        row = (cls, *box, conf) if save_conf else (cls, *box)
        lines.append(("%g " * len(row)).rstrip() % row)
    return lines
