"""mmdetection's test-time post-processing on the head contract's decoded rows, for val.py and detect.py.

The rows (B, N, 4 + factor + nc) hold every prior in mmdetection's order (level by level, then y, x, anchor):
boxes [cx, cy, w, h] in input pixels, the score factor when the head has one (FCOS / ATSS centerness, YOLOX
objectness) and the sigmoid class scores. `settings` is the head contract's `test_cfg`
(models/dense_heads/base.py: score_thr, iou_thres, nms_pre, max_per_img, min_bbox_size, multi_label, strides,
priors_per_cell); exports store it in their metadata, so an exported dense model is post-processed the same way.

- multi_label (RetinaNet, FCOS, ATSS, GFL: mmdet's BaseDenseHead): per level the (prior, class) pairs with a
  class score > conf_thres, the `nms_pre` best of them; then the score factor multiplies the scores, boxes with
  w or h <= min_bbox_size go (when it is >= 0), class-aware NMS, the max_det best.
- one label (YOLOX): the best class per prior, kept when objectness x score >= conf_thres; class-aware NMS,
  the max_det best (mmdet's YOLOXHead has no nms_pre).

The callers' flags arrive through utils/nms.head_nms_kwargs (val: the head's score_thr, NMS IoU and max_per_img;
detect: the higher of --conf-thres and score_thr). `agnostic` runs one NMS over all classes; `classes` keeps
those classes after NMS (per-class NMS makes that equal to filtering before it, but after the per-level cut).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch

from utils.boxes import xywh2xyxy
from utils.cli import UserValueError
from utils.dense.predict import batched_nms, filter_scores_and_topk


def level_counts(hw: Sequence[int], strides: Sequence[float], priors_per_cell: int) -> list[int]:
    """Priors per level of an (h, w) input: ceil(h / s) x ceil(w / s) cells (stride-2 convs with padding 1 round
    up at each level) x the priors of a cell."""
    h, w = int(hw[0]), int(hw[1])
    return [math.ceil(h / s) * math.ceil(w / s) * int(priors_per_cell) for s in strides]


def postprocess_decoded(decoded: torch.Tensor, hw: Sequence[int], settings: Mapping[str, Any], conf_thres: float,
                        iou_thres: float, max_det: int, classes: Sequence[int] | None = None,
                        agnostic: bool = False, **_generic) -> list[torch.Tensor]:
    """Per image (n, 6) [x1, y1, x2, y2, conf, cls] rows, best first (the generic NMS keywords are not used)."""
    counts = level_counts(hw, settings["strides"], settings["priors_per_cell"])
    if decoded.shape[1] != sum(counts):
        raise UserValueError(f"decoded output has {decoded.shape[1]} rows but a {tuple(hw)} input gives "
                             f"{sum(counts)} priors over strides {list(settings['strides'])}: the head's own "
                             f"post-processing needs the plain forward (no --augment)")
    factor = int(bool(settings["score_factor"]))
    out = []
    for d in decoded.detach().float():
        boxes, scores = xywh2xyxy(d[:, :4]), d[:, 4 + factor:]
        factors = d[:, 4] if factor else None
        if settings["multi_label"]:
            b, s, lab = _per_level_candidates(boxes, scores, factors, counts, conf_thres, settings)
        else:
            b, s, lab = _one_label_candidates(boxes, scores, factors, conf_thres)
        out.append(_nms_rows(b, s, lab, iou_thres, max_det, classes, agnostic))
    return out


def _per_level_candidates(boxes, scores, factors, counts, conf_thres, settings):
    """mmdet's _predict_by_feat_single: per-level score filter and nms_pre, then factors and min_bbox_size."""
    kept_boxes, kept_scores, kept_labels = [], [], []
    for lb, ls, lf in zip(boxes.split(counts), scores.split(counts),
                          factors.split(counts) if factors is not None else [None] * len(counts)):
        s, lab, idx, _ = filter_scores_and_topk(ls, conf_thres, settings["nms_pre"], {})
        kept_boxes.append(lb[idx])
        kept_scores.append(s * lf[idx] if lf is not None else s)
        kept_labels.append(lab)
    b, s, lab = torch.cat(kept_boxes), torch.cat(kept_scores), torch.cat(kept_labels)
    if settings["min_bbox_size"] >= 0:
        valid = (b[:, 2] - b[:, 0] > settings["min_bbox_size"]) & (b[:, 3] - b[:, 1] > settings["min_bbox_size"])
        b, s, lab = b[valid], s[valid], lab[valid]
    return b, s, lab


def _one_label_candidates(boxes, scores, factors, conf_thres):
    """mmdet's YOLOXHead.predict_by_feat: best class per prior, objectness x score >= the threshold."""
    best, labels = scores.max(1)
    conf = best * factors if factors is not None else best
    keep = conf >= conf_thres
    return boxes[keep], conf[keep], labels[keep]


def _nms_rows(boxes, scores, labels, iou_thres, max_det, classes, agnostic) -> torch.Tensor:
    if boxes.numel():
        scores, keep = batched_nms(boxes, scores, torch.zeros_like(labels) if agnostic else labels, iou_thres)
        boxes, labels = boxes[keep], labels[keep]
    rows = torch.cat((boxes, scores[:, None], labels[:, None].to(boxes.dtype)), 1)
    if classes is not None:
        rows = rows[(rows[:, 5:6] == torch.tensor(classes, device=rows.device, dtype=rows.dtype)).any(1)]
    return rows[:max_det] if max_det > 0 else rows
