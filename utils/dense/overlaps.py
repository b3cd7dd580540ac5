"""IoU, IoF and GIoU of xyxy boxes with mmdetection's conventions (union and enclosing area floored at eps).

Differs from utils/boxes.py `box_iou` on purpose: mmdetection floors the union at `eps` (max(union, eps))
instead of adding eps, and its assigners compare these values against thresholds, so the exact
formula matters for matching its assignments.
"""
from __future__ import annotations

import torch

MODES = ("iou", "iof", "giou")


def bbox_overlaps(boxes1: torch.Tensor, boxes2: torch.Tensor, mode: str = "iou", is_aligned: bool = False,
                  eps: float = 1e-6) -> torch.Tensor:
    """Pairwise (M, N) or, with is_aligned, element-wise (M,) overlaps of xyxy boxes (M, 4), (N, 4)."""
    if mode not in MODES:
        raise ValueError(f"overlap mode '{mode}' is not one of {MODES}")
    boxes1, boxes2 = boxes1[..., :4], boxes2[..., :4]
    rows, cols = boxes1.shape[-2], boxes2.shape[-2]
    if is_aligned and rows != cols:
        raise ValueError(f"aligned overlaps need as many boxes on each side, got {rows} and {cols}")
    if rows * cols == 0:
        shape = boxes1.shape[:-2] + ((rows,) if is_aligned else (rows, cols))
        return boxes1.new_zeros(shape)
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    if is_aligned:
        a, b = boxes1, boxes2
    else:
        a, b = boxes1[..., :, None, :], boxes2[..., None, :, :]
        area1, area2 = area1[..., None], area2[..., None, :]
    lt = torch.max(a[..., :2], b[..., :2])
    rb = torch.min(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    union = area1 + area2 - overlap if mode in ("iou", "giou") else area1
    floor = union.new_tensor([eps])
    union = torch.max(union, floor)
    ious = overlap / union
    if mode != "giou":
        return ious
    enclose_wh = (torch.max(a[..., 2:], b[..., 2:]) - torch.min(a[..., :2], b[..., :2])).clamp(min=0)
    enclose_area = torch.max(enclose_wh[..., 0] * enclose_wh[..., 1], floor)
    return ious - (enclose_area - union) / enclose_area
