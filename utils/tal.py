"""TaskAlignedAssigner (TOOD, Feng et al. 2021) as YOLOv8 / YOLO11 train with it (ultralytics 8.4 behaviour).

The rule, per image and ground-truth box g:
1. Candidates: anchor points (cell centres, pixels) strictly inside g, where any side of g shorter than
   `stride_val` (the second level's stride, 16 px) is first widened to that length about its centre.
2. Alignment metric t = s^alpha * u^beta for each candidate, s the predicted score of g's class, u the CIoU
   (clamped at 0) of the predicted box with g; alpha 0.5, beta 6.0.
3. The top-k (10) candidates by t are positives of g. An anchor positive for several boxes keeps the one it
   overlaps most (CIoU).
4. Targets: the box of its ground truth and a one-hot class vector scaled by t / max_t(g) * max_u(g)
   (the metric normalised per box, so the best-aligned anchor of g gets g's best IoU as its score target).
Inputs and outputs are plain tensors; `AssignResult` names them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from utils.boxes import bbox_iou, xywh2xyxy, xyxy2xywh


@dataclass
class AssignResult:
    """Per anchor: `fg_mask` (B, N) bool, `target_gt_idx` (B, N) index into the padded ground truth,
    `target_labels` (B, N), `target_bboxes` (B, N, 4) xyxy pixels, `target_scores` (B, N, nc) soft labels."""

    target_labels: torch.Tensor
    target_bboxes: torch.Tensor
    target_scores: torch.Tensor
    fg_mask: torch.Tensor
    target_gt_idx: torch.Tensor


class TaskAlignedAssigner:
    """Assign ground truth to anchor points by the task-aligned metric (see the module docstring)."""

    def __init__(self, topk: int = 10, num_classes: int = 80, alpha: float = 0.5, beta: float = 6.0,
                 stride: tuple[float, ...] = (8, 16, 32), eps: float = 1e-9):
        self.topk, self.num_classes, self.alpha, self.beta, self.eps = topk, num_classes, alpha, beta, eps
        self.stride_val = float(stride[1] if len(stride) > 1 else stride[0])

    @torch.no_grad()
    def __call__(self, pd_scores: torch.Tensor, pd_bboxes: torch.Tensor, anc_points: torch.Tensor,
                 gt_labels: torch.Tensor, gt_bboxes: torch.Tensor, mask_gt: torch.Tensor) -> AssignResult:
        """pd_scores (B, N, nc) sigmoid, pd_bboxes (B, N, 4) xyxy px, anc_points (N, 2) px, gt_labels (B, M, 1),
        gt_bboxes (B, M, 4) xyxy px, mask_gt (B, M, 1) (1 for real rows of the padded ground truth)."""
        n_max = gt_bboxes.shape[1]
        if n_max == 0:
            z = torch.zeros_like(pd_scores[..., 0])
            return AssignResult(torch.full_like(z, self.num_classes), torch.zeros_like(pd_bboxes),
                                torch.zeros_like(pd_scores), z.bool(), z.long())
        mask_in = self.candidates_in_gts(anc_points, gt_bboxes, mask_gt)
        metric, overlaps = self.box_metrics(pd_scores, pd_bboxes, gt_labels, gt_bboxes, mask_in * mask_gt)
        mask_topk = self.topk_candidates(metric, mask_gt.expand(-1, -1, self.topk).bool())
        mask_pos = mask_topk.mul_(mask_in).mul_(mask_gt.bool())  # int8 0/1 (B, M, N)
        target_gt_idx, fg_mask, mask_pos = self.highest_overlaps(mask_pos, overlaps, n_max)
        labels, bboxes, scores = self.targets(gt_labels, gt_bboxes, target_gt_idx, fg_mask)
        metric = metric * mask_pos
        pos_metric = metric.amax(-1, keepdim=True)
        pos_overlaps = (overlaps * mask_pos).amax(-1, keepdim=True)
        norm = (metric * pos_overlaps / (pos_metric + self.eps)).amax(-2).unsqueeze(-1)
        return AssignResult(labels, bboxes, scores * norm, fg_mask.bool(), target_gt_idx)

    def candidates_in_gts(self, points: torch.Tensor, gt_bboxes: torch.Tensor, mask_gt: torch.Tensor) -> torch.Tensor:
        """(B, M, N) bool: anchor point strictly inside the box, its sides first widened to at least stride_val."""
        xywh = xyxy2xywh(gt_bboxes)
        small = (xywh[..., 2:] < self.stride_val) & mask_gt.bool()
        xywh[..., 2:] = torch.where(small, torch.full_like(xywh[..., 2:], self.stride_val), xywh[..., 2:])
        boxes = xywh2xyxy(xywh)
        bs, m, _ = boxes.shape
        lt, rb = boxes.view(-1, 1, 4).chunk(2, 2)
        deltas = torch.cat((points[None] - lt, rb - points[None]), 2).view(bs, m, points.shape[0], -1)
        return deltas.amin(3) > self.eps

    def box_metrics(self, pd_scores, pd_bboxes, gt_labels, gt_bboxes, mask):
        """(alignment metric, CIoU) per (image, box, anchor), zero outside `mask`."""
        b, g, a = mask.bool().nonzero(as_tuple=True)  # the candidate (image, box, anchor) triples
        overlaps = torch.zeros(mask.shape, dtype=pd_bboxes.dtype, device=pd_bboxes.device)
        metric = torch.zeros(mask.shape, dtype=pd_scores.dtype, device=pd_scores.device)
        iou = bbox_iou(gt_bboxes[b, g], pd_bboxes[b, a], xywh=False, CIoU=True).squeeze(-1).clamp_(0)
        overlaps[b, g, a] = iou
        metric[b, g, a] = pd_scores[b, a, gt_labels[b, g, 0].long()].pow(self.alpha) * iou.pow(self.beta)
        return metric, overlaps

    def topk_candidates(self, metrics: torch.Tensor, topk_mask: torch.Tensor) -> torch.Tensor:
        """(B, M, N) int8, 1 for the top-k anchors of each real box by metric (an index picked twice counts as
        none)."""
        _, idx = torch.topk(metrics, self.topk, dim=-1, largest=True)
        idx.masked_fill_(~topk_mask, 0)
        count = torch.zeros(metrics.shape, dtype=torch.int8, device=metrics.device)
        ones = torch.ones_like(idx[:, :, :1], dtype=torch.int8)
        for k in range(self.topk):
            count.scatter_add_(-1, idx[:, :, k:k + 1], ones)
        return count.masked_fill_(count > 1, 0)

    @staticmethod
    def highest_overlaps(mask_pos: torch.Tensor, overlaps: torch.Tensor, n_max: int):
        """An anchor positive for several boxes keeps the box with the highest CIoU."""
        fg = mask_pos.sum(-2)
        if fg.max() > 1:
            multi = (fg.unsqueeze(1) > 1).expand(-1, n_max, -1)
            best = torch.zeros_like(mask_pos).scatter_(1, overlaps.argmax(1).unsqueeze(1), 1)
            mask_pos = torch.where(multi, best, mask_pos)
            fg = mask_pos.sum(-2)
        return mask_pos.argmax(-2), fg, mask_pos

    def targets(self, gt_labels, gt_bboxes, target_gt_idx, fg_mask):
        """Labels, boxes and one-hot scores (zero for background) gathered from each anchor's ground truth."""
        bs, m = gt_labels.shape[:2]
        flat = target_gt_idx + torch.arange(bs, device=gt_labels.device)[:, None] * m
        labels = gt_labels.long().flatten()[flat].clamp_(0)
        bboxes = gt_bboxes.view(-1, gt_bboxes.shape[-1])[flat]
        scores = torch.zeros((*labels.shape, self.num_classes), dtype=torch.int8, device=labels.device)
        scores.scatter_(2, labels.unsqueeze(-1), 1)
        return labels, bboxes, scores * (fg_mask[:, :, None] > 0)
