"""SimOTAAssigner (mmdetection semantics, YOLOX, Ge et al. 2021): dynamic-k matching on a cost matrix.

Candidates are the priors whose centre lies inside some gt box or within center_radius*stride of some gt
centre. Cost per (candidate, gt) = cls_weight * sum_c BCE(score, one_hot(gt label)) + iou_weight *
-log(IoU(pred box, gt) + 1e-7) + 1e5 * (not both inside that gt and its centre region). Each gt takes its
k lowest-cost candidates with k = max(1, int(sum of its top-`candidate_topk` IoUs)); a prior taken by two
gts keeps the cheaper one. max_overlaps: the IoU of the prediction with its gt for positives, -1e5 for
the rest.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from utils.dense.assign_result import AssignResult
from utils.dense.overlaps import bbox_overlaps

INF = 100000.0
EPS = 1.0e-7


class SimOTAAssigner:
    inputs = "predictions"  # assign(priors, pred_bboxes, pred_scores, gt_bboxes, gt_labels)

    def __init__(self, center_radius: float = 2.5, candidate_topk: int = 10, iou_weight: float = 3.0,
                 cls_weight: float = 1.0):
        if center_radius <= 0 or int(candidate_topk) != candidate_topk or candidate_topk < 1:
            raise ValueError(f"center_radius must be > 0 and candidate_topk a positive int, "
                             f"got {center_radius}, {candidate_topk}")
        self.center_radius = float(center_radius)
        self.candidate_topk = int(candidate_topk)
        self.iou_weight = float(iou_weight)
        self.cls_weight = float(cls_weight)

    def assign(self, priors: torch.Tensor, pred_bboxes: torch.Tensor, pred_scores: torch.Tensor,
               gt_bboxes: torch.Tensor, gt_labels: torch.Tensor) -> AssignResult:
        """priors (P, 4) (cx, cy, stride_w, stride_h); pred boxes (P, 4) xyxy; pred scores (P, C) probabilities."""
        num_gt, num_priors = gt_bboxes.size(0), pred_bboxes.size(0)
        gt_inds = pred_bboxes.new_full((num_priors,), 0, dtype=torch.long)
        empty = AssignResult(num_gt, gt_inds, pred_bboxes.new_zeros((num_priors,)),
                             pred_bboxes.new_full((num_priors,), -1, dtype=torch.long))
        if num_gt == 0 or num_priors == 0:
            return empty
        valid, in_box_and_center = self.in_gt_and_in_center(priors, gt_bboxes)
        valid_boxes, valid_scores = pred_bboxes[valid], pred_scores[valid]
        num_valid = valid_boxes.size(0)
        if num_valid == 0:
            return empty
        ious = bbox_overlaps(valid_boxes, gt_bboxes)
        iou_cost = -torch.log(ious + EPS)
        onehot = F.one_hot(gt_labels.to(torch.int64), pred_scores.shape[-1]).float()
        onehot = onehot.unsqueeze(0).repeat(num_valid, 1, 1)
        scores = valid_scores.unsqueeze(1).repeat(1, num_gt, 1)
        cls_cost = F.binary_cross_entropy(scores.float(), onehot, reduction="none").sum(-1).to(scores.dtype)
        cost = cls_cost * self.cls_weight + iou_cost * self.iou_weight + (~in_box_and_center) * INF
        matched_ious, matched_gt, fg = self.dynamic_k_matching(cost, ious, num_gt)
        valid[valid.clone()] = fg
        gt_inds[valid] = matched_gt + 1
        labels = gt_inds.new_full((num_priors,), -1)
        labels[valid] = gt_labels[matched_gt].long()
        max_overlaps = gt_inds.new_full((num_priors,), -INF, dtype=torch.float32)
        max_overlaps[valid] = matched_ious
        return AssignResult(num_gt, gt_inds, max_overlaps, labels)

    def in_gt_and_in_center(self, priors: torch.Tensor, gt_bboxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(P,) in some gt box or centre region; (candidates, G) in both that gt's box and centre region."""
        x, y = priors[:, 0:1], priors[:, 1:2]
        sx, sy = priors[:, 2:3], priors[:, 3:4]
        in_gts = torch.stack([x - gt_bboxes[:, 0], y - gt_bboxes[:, 1], gt_bboxes[:, 2] - x,
                              gt_bboxes[:, 3] - y], dim=1).min(dim=1).values > 0
        cx, cy = (gt_bboxes[:, 0] + gt_bboxes[:, 2]) / 2.0, (gt_bboxes[:, 1] + gt_bboxes[:, 3]) / 2.0
        r = self.center_radius
        in_cts = torch.stack([x - (cx - r * sx), y - (cy - r * sy), (cx + r * sx) - x,
                              (cy + r * sy) - y], dim=1).min(dim=1).values > 0
        either = in_gts.any(dim=1) | in_cts.any(dim=1)
        return either, in_gts[either, :] & in_cts[either, :]

    def dynamic_k_matching(self, cost: torch.Tensor, ious: torch.Tensor,
                           num_gt: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """IoU and 0-based gt of each matched candidate, and the (candidates,) matched mask."""
        matching = torch.zeros_like(cost, dtype=torch.uint8)
        topk = min(self.candidate_topk, ious.size(0))
        topk_ious, _ = torch.topk(ious, topk, dim=0)
        dynamic_ks = torch.clamp(topk_ious.sum(0).int(), min=1)
        for g in range(num_gt):
            _, pos = torch.topk(cost[:, g], k=int(dynamic_ks[g]), largest=False)
            matching[:, g][pos] = 1
        multi = matching.sum(1) > 1
        if multi.sum() > 0:
            _, argmin = torch.min(cost[multi, :], dim=1)
            matching[multi, :] *= 0
            matching[multi, argmin] = 1
        fg = matching.sum(1) > 0
        matched_gt = matching[fg, :].argmax(1)
        matched_ious = (matching * ious).sum(1)[fg]
        return matched_ious, matched_gt, fg
