"""Test-time post-processing with mmdetection's semantics: per-level top-k, class-aware NMS, max detections.

test_cfg keys: nms_pre (pairs kept per level, by score), score_thr (kept when score > thr), min_bbox_size
(boxes with w or h <= it dropped when it is >= 0), nms ({type: nms, iou_threshold}), max_per_img.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

from utils.cli import UserKeyError, UserValueError
from utils.nms_kernel import nms

TEST_CFG_KEYS = ("nms_pre", "min_bbox_size", "score_thr", "nms", "max_per_img")
NMS_SPLIT = 10000  # mmcv's batched_nms runs one NMS per class above this many boxes


def check_test_cfg(cfg: Mapping[str, Any] | None, where: str) -> dict:
    """A validated copy of a test_cfg mapping; unknown keys or bad values raise naming `where`."""
    cfg = dict(cfg or {})
    for key in cfg:
        if key not in TEST_CFG_KEYS:
            raise UserKeyError(f"{where}.{key}: unknown test_cfg key; known: {', '.join(TEST_CFG_KEYS)}")
    for key in ("nms_pre", "max_per_img"):
        if key in cfg and (isinstance(cfg[key], bool) or not isinstance(cfg[key], int)):
            raise UserValueError(f"{where}.{key}: must be an integer, got {cfg[key]!r}")
    for key in ("score_thr", "min_bbox_size"):
        if key in cfg and (isinstance(cfg[key], bool) or not isinstance(cfg[key], (int, float))):
            raise UserValueError(f"{where}.{key}: must be a number, got {cfg[key]!r}")
    nms = cfg.get("nms")
    if nms is not None:
        if not isinstance(nms, Mapping) or nms.get("type", "nms") != "nms" or set(nms) - {"type", "iou_threshold"}:
            raise UserValueError(f"{where}.nms: must be {{type: nms, iou_threshold: <0..1>}}, got {nms!r}")
        thr = nms.get("iou_threshold")
        if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0 <= thr <= 1:
            raise UserValueError(f"{where}.nms.iou_threshold: must be a number in [0, 1], got {thr!r}")
    return cfg


def filter_scores_and_topk(scores: torch.Tensor, score_thr: float, topk: int,
                           tensors: Mapping[str, torch.Tensor]
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """(prior, class) pairs with score > score_thr, the `topk` best: scores, labels, prior indices, tensors[idx].

    topk < 0 (no nms_pre) keeps every pair; mmdetection's slicing with -1 would drop the last one.
    """
    valid = scores > score_thr
    kept = scores[valid]
    idxs = torch.nonzero(valid)
    num = idxs.size(0) if topk is None or topk < 0 else min(topk, idxs.size(0))
    kept, order = kept.sort(descending=True)
    kept = kept[:num]
    keep_idxs, labels = idxs[order[:num]].unbind(dim=1)
    return kept, labels, keep_idxs, {k: v[keep_idxs] for k, v in tensors.items()}


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                iou_threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-aware NMS as mmcv's batched_nms: kept indices sorted by score, and their scores."""
    if boxes.numel() == 0:
        return scores.new_zeros(0), torch.zeros(0, dtype=torch.long, device=boxes.device)
    if boxes.size(0) < NMS_SPLIT:
        offsets = labels.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
        keep = nms(boxes + offsets[:, None], scores, iou_threshold)
        return scores[keep], keep
    kept = torch.zeros_like(scores, dtype=torch.bool)
    for c in torch.unique(labels):
        mask = (labels == c).nonzero(as_tuple=False).view(-1)
        kept[mask[nms(boxes[mask], scores[mask], iou_threshold)]] = True
    keep = kept.nonzero(as_tuple=False).view(-1)
    s, order = scores[keep].sort(descending=True)
    return s, keep[order]


Detections = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def nms_iou(cfg: Mapping[str, Any]) -> float:
    """The test_cfg's NMS IoU threshold; a test_cfg without `nms` cannot run NMS."""
    if not isinstance(cfg.get("nms"), Mapping) or "iou_threshold" not in cfg["nms"]:
        raise ValueError(f"test_cfg has no nms {{type: nms, iou_threshold: ...}} to run NMS with: {dict(cfg)!r}")
    return cfg["nms"]["iou_threshold"]


def bbox_post_process(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, cfg: Mapping[str, Any],
                      score_factors: torch.Tensor | None = None, with_nms: bool = True) -> Detections:
    """Score factors, min_bbox_size, class-aware NMS, then the first max_per_img: (boxes, scores, labels)."""
    if score_factors is not None:
        scores = scores * score_factors
    if cfg.get("min_bbox_size", -1) >= 0:
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        valid = (w > cfg["min_bbox_size"]) & (h > cfg["min_bbox_size"])
        if not valid.all():
            boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
    if with_nms and boxes.numel() > 0:
        scores, keep = batched_nms(boxes, scores, labels, nms_iou(cfg))
        boxes, labels = boxes[keep], labels[keep]
        if "max_per_img" in cfg:
            n = cfg["max_per_img"]
            boxes, scores, labels = boxes[:n], scores[:n], labels[:n]
    return boxes, scores, labels
