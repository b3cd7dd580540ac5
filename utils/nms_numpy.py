"""NMS on NumPy arrays, for exports that detect.py runs without torch: utils/nms.py's rules for one label per box
(detect.py's default), with torchvision's greedy kernel redone in the same float32 arithmetic, so the rows equal
utils/nms.non_max_suppression's (multi_label=False). Decoded rows: `[cx, cy, w, h, obj, cls_0 ..]`, or
`[cx, cy, w, h, cls_0 ..]` for heads without objectness.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from utils.boxes import xywh2xyxy

MAX_WH = 7680  # class offset in pixels; larger than any image side, as YOLOv5 uses (utils/nms.py uses this one)


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_thres: float) -> np.ndarray:
    """Indices of the xyxy `boxes` kept, by decreasing score: torchvision.ops.nms's rule (drop a box whose IoU with
    a kept one exceeds `iou_thres`), its stable descending order and its float32 IoU."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    threshold = np.float64(iou_thres)  # compared in double, as the kernel's `ovr > iou_threshold`
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), np.float32(0))
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), np.float32(0))
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter) <= threshold]
    return np.array(keep, dtype=np.int64)


def _candidates(pred: np.ndarray, conf_thres: float, has_objectness: bool) -> np.ndarray:
    """One image's rows above the threshold as (k, 6) [x1, y1, x2, y2, conf, cls], best class per box."""
    score_of_box = pred[:, 4] if has_objectness else pred[:, 4:].max(1)
    x = pred[score_of_box > conf_thres]
    scores = x[:, 5:] * x[:, 4:5] if has_objectness else x[:, 4:]
    cls = scores.argmax(1)
    conf = np.take_along_axis(scores, cls[:, None], 1)
    det = np.concatenate((xywh2xyxy(x[:, :4]), conf, cls[:, None].astype(x.dtype)), 1)
    return det[conf[:, 0] > conf_thres]


def non_max_suppression_numpy(prediction: np.ndarray, conf_thres: float = 0.25, iou_thres: float = 0.45,
                              classes: Sequence[int] | None = None, agnostic: bool = False, max_det: int = 300,
                              max_nms: int = 30000, has_objectness: bool = True) -> list[np.ndarray]:
    """NMS of (B, N, 4 [+ 1] + nc) float32 predictions -> per image an (n, 6) array [x1, y1, x2, y2, conf, cls]."""
    if not (0 <= conf_thres <= 1 and 0 <= iou_thres <= 1):
        raise ValueError(f"conf_thres={conf_thres} and iou_thres={iou_thres} must be in [0, 1]")
    n_extra = 5 if has_objectness else 4
    if prediction.ndim != 3 or prediction.shape[2] < n_extra + 1:
        raise ValueError(f"prediction must be (batch, n, {n_extra} + nc) with nc >= 1, got {prediction.shape}")
    out = []
    for pred in prediction.astype(np.float32, copy=False):
        det = _candidates(pred, conf_thres, has_objectness)
        if classes is not None:
            det = det[np.isin(det[:, 5], np.asarray(classes, dtype=det.dtype))]
        det = det[np.argsort(-det[:, 4], kind="stable")[:max_nms]]
        offset = det[:, 5:6] * np.float32(0 if agnostic else MAX_WH)
        out.append(det[greedy_nms(det[:, :4] + offset, det[:, 4], iou_thres)[:max_det]])
    return out
