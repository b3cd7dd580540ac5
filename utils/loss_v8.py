"""The training loss of the anchor-free YOLOv8 / YOLO11 head (ultralytics 8.4 `v8DetectionLoss`).

- Assignment: `utils.tal.TaskAlignedAssigner` (top-k 10, alpha 0.5, beta 6.0) on the detached predictions
  (sigmoid scores, boxes decoded to pixels) against the ground truth in pixels.
- cls: BCE of every anchor's nc logits against the assigner's soft scores (0 for background).
- box: 1 - CIoU of the positives' predicted boxes (grid units), weighted by their target score.
- dfl: distribution focal loss of the 4 x reg_max logits against the target distances (left, top, right,
  bottom in grid units, clamped to reg_max - 1.01), split between the two neighbouring bins, same weight.
Each term is divided by the sum of all target scores (at least 1): the normaliser is the number of
"soft positives", not the number of anchors, so images full of background do not dilute the loss.
Gains `box`, `cls`, `dfl` come from the hyp YAML (data/hyps/hyp.v8.yaml: 7.5, 0.5, 1.5).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.detect_v8 import bbox2dist, dist2bbox
from utils.boxes import bbox_iou, xywh2xyxy
from utils.tal import AssignResult, TaskAlignedAssigner


def dfl_loss(pred_dist: torch.Tensor, target: torch.Tensor, reg_max: int) -> torch.Tensor:
    """(n, 4) per-side DFL: cross-entropy to the two bins around the target distance, weighted by proximity; mean over
    sides -> (n, 1). `pred_dist` is (n * 4, reg_max) logits."""
    target = target.clamp(0, reg_max - 1 - 0.01)
    tl = target.long()
    tr = tl + 1
    wl = tr - target
    wr = 1 - wl
    left = F.cross_entropy(pred_dist, tl.view(-1), reduction="none").view(tl.shape)
    right = F.cross_entropy(pred_dist, tr.view(-1), reduction="none").view(tl.shape)
    return (left * wl + right * wr).mean(-1, keepdim=True)


def pad_targets(targets: torch.Tensor, batch_size: int, scale: torch.Tensor) -> torch.Tensor:
    """(nt, 6) [image, class, cx, cy, w, h] normalised -> (B, max per image, 5) [class, x1, y1, x2, y2] pixels,
    zero rows as padding."""
    if targets.shape[0] == 0:
        return torch.zeros(batch_size, 0, 5, device=targets.device)
    i = targets[:, 0].long()
    counts = torch.bincount(i, minlength=batch_size)
    out = torch.zeros(batch_size, int(counts.max()), 5, device=targets.device)
    for j in range(batch_size):
        rows = targets[i == j, 1:]
        out[j, :rows.shape[0]] = rows
    out[..., 1:5] = xywh2xyxy(out[..., 1:5].mul_(scale))
    return out


class V8DetectionLoss:
    """Callable (preds, targets) -> (total (1,) x batch size, detached items [box, cls, dfl] (3,))."""

    item_names = ("box", "cls", "dfl")  # as ultralytics names them in results.csv

    def __init__(self, head: Any, hyp: dict[str, Any], topk: int = 10) -> None:
        for key in ("box", "cls", "dfl"):
            if key not in hyp:
                raise KeyError(f"hyp is missing '{key}' needed by the anchor-free loss (see data/hyps/hyp.v8.yaml)")
        self.head, self.hyp = head, hyp
        self.nc, self.reg_max = int(head.nc), int(head.reg_max)
        self.bce = nn.BCEWithLogitsLoss(reduction="none")
        self.assigner = TaskAlignedAssigner(topk=topk, num_classes=self.nc, alpha=0.5, beta=6.0,
                                            stride=tuple(float(s) for s in head.stride))

    def decode(self, points: torch.Tensor, pred_dist: torch.Tensor) -> torch.Tensor:
        """(B, N, 4 * reg_max) logits -> (B, N, 4) xyxy boxes in grid units (DFL expectation)."""
        b, a, c = pred_dist.shape
        proj = torch.arange(self.reg_max, dtype=pred_dist.dtype, device=pred_dist.device)
        dist = pred_dist.view(b, a, 4, c // 4).softmax(3).matmul(proj)
        return dist2bbox(dist, points, xywh=False)

    def assign(self, preds: list[torch.Tensor], targets: torch.Tensor) -> tuple[AssignResult, dict]:
        """The assignment of a batch and the tensors the loss terms need (exposed for tests and analysis tools)."""
        box, cls = self.head.split(preds)
        pred_dist, pred_scores = box.transpose(1, 2), cls.transpose(1, 2)  # (B, N, 4 * reg_max), (B, N, nc)
        bs = pred_scores.shape[0]
        points, strides = self.head.anchor_points(preds)
        imgsz = torch.tensor(preds[0].shape[2:], device=pred_scores.device, dtype=pred_scores.dtype) * strides[0, 0]
        gt = pad_targets(targets.to(pred_scores.dtype), bs, imgsz[[1, 0, 1, 0]])
        gt_labels, gt_bboxes = gt.split((1, 4), 2)
        mask_gt = gt_bboxes.sum(2, keepdim=True).gt_(0.0)
        pred_bboxes = self.decode(points, pred_dist)
        result = self.assigner(pred_scores.detach().sigmoid(), (pred_bboxes.detach() * strides).type(gt_bboxes.dtype),
                               points * strides, gt_labels, gt_bboxes, mask_gt)
        parts = {"pred_dist": pred_dist, "pred_scores": pred_scores, "pred_bboxes": pred_bboxes, "points": points,
                 "strides": strides, "gt_bboxes": gt_bboxes, "gt_labels": gt_labels, "mask_gt": mask_gt}
        return result, parts

    def positives(self, preds: list[torch.Tensor], targets: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """The anchor points the assigner makes positive, per image (the contract of utils/loss_protocol.py):
        "centers" (K, 2) in input pixels, "gt_index" (K,) the box's index among that image's rows of `targets`,
        "level" (K,), "score" (K,) the soft class target (the normalised alignment metric)."""
        with torch.no_grad():
            res, p = self.assign(preds, targets)
        centers = p["points"] * p["strides"]
        level = torch.cat([torch.full((r.shape[2] * r.shape[3],), i, dtype=torch.long, device=centers.device)
                           for i, r in enumerate(preds)])
        score = res.target_scores.sum(-1)
        return [{"centers": centers[fg], "gt_index": gi[fg], "level": level[fg], "score": sc[fg]}
                for fg, gi, sc in zip(res.fg_mask, res.target_gt_idx, score)]

    def __call__(self, preds: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        res, p = self.assign(preds, targets)
        bs = p["pred_scores"].shape[0]
        target_scores = res.target_scores.to(p["pred_scores"].dtype)
        tss = max(target_scores.sum(), 1)
        lcls = self.bce(p["pred_scores"], target_scores).sum() / tss
        lbox = torch.zeros((), device=lcls.device)
        ldfl = torch.zeros((), device=lcls.device)
        fg = res.fg_mask
        if fg.sum():
            target_bboxes = res.target_bboxes / p["strides"]
            weight = target_scores.sum(-1)[fg].unsqueeze(-1)
            iou = bbox_iou(p["pred_bboxes"][fg], target_bboxes[fg], xywh=False, CIoU=True)
            lbox = ((1.0 - iou) * weight).sum() / tss
            ltrb = bbox2dist(p["points"], target_bboxes, self.reg_max - 1)
            ldfl = (dfl_loss(p["pred_dist"][fg].view(-1, self.reg_max), ltrb[fg], self.reg_max) * weight).sum() / tss
        items = torch.stack((lbox * self.hyp["box"], lcls * self.hyp["cls"], ldfl * self.hyp["dfl"]))
        # "* bs" as in the YOLOv5 loss (utils/loss.py): the trainer's nominal-batch accumulation sums over images
        return items.sum().view(1) * bs, items.detach()
