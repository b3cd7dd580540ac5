"""ATSSAssigner (mmdetection semantics, Zhang et al. 2020): adaptive IoU threshold per gt.

Per level, the `topk` priors whose centres are closest to the gt centre are candidates; the threshold is
mean + std (unbiased) of the candidates' IoUs; a candidate is positive when its IoU >= the threshold and
its centre lies inside the gt by more than 0.01 px on every side. A prior positive for several gts takes
the highest-IoU one. max_overlaps: the IoU with the assigned gt for positives, -1e8 for the rest.
With `alpha` set, the "IoU" is sigmoid(cls score)^(1-alpha) * IoU(pred box, gt)^alpha (needs
pred scores and boxes).
"""
from __future__ import annotations

from typing import Sequence

import torch

from utils.dense.assign_result import AssignResult, labels_from_gt_inds
from utils.dense.overlaps import bbox_overlaps

INF = 100000000


class ATSSAssigner:
    inputs = "priors_per_level"  # assign(priors, num_level_priors, gt_bboxes, gt_labels, ...)

    def __init__(self, topk: int, alpha: float | None = None, ignore_iof_thr: float = -1):
        if int(topk) != topk or topk < 1:
            raise ValueError(f"topk must be a positive int, got {topk}")
        self.topk = int(topk)
        self.alpha = alpha
        self.ignore_iof_thr = ignore_iof_thr

    def assign(self, priors: torch.Tensor, num_level_priors: Sequence[int], gt_bboxes: torch.Tensor,
               gt_labels: torch.Tensor, gt_bboxes_ignore: torch.Tensor | None = None,
               pred_scores: torch.Tensor | None = None, pred_bboxes: torch.Tensor | None = None) -> AssignResult:
        """Assign xyxy priors (P, 4), concatenated level by level with `num_level_priors`, to gts (G, 4)."""
        priors = priors[:, :4]
        num_gt, num_priors = gt_bboxes.size(0), priors.size(0)
        if sum(num_level_priors) != num_priors:
            raise ValueError(f"num_level_priors {list(num_level_priors)} do not add up to {num_priors} priors")
        if self.alpha is None:
            overlaps = bbox_overlaps(priors, gt_bboxes)
        else:
            if pred_scores is None or pred_bboxes is None:
                raise ValueError("ATSSAssigner with alpha needs pred_scores and pred_bboxes")
            cls_cost = torch.sigmoid(pred_scores[:, gt_labels])
            overlaps = cls_cost ** (1 - self.alpha) * bbox_overlaps(pred_bboxes, gt_bboxes) ** self.alpha
        gt_inds = overlaps.new_full((num_priors,), 0, dtype=torch.long)
        if num_gt == 0 or num_priors == 0:
            return AssignResult(num_gt, gt_inds, overlaps.new_zeros((num_priors,)),
                                overlaps.new_full((num_priors,), -1, dtype=torch.long))
        gt_cx, gt_cy = (gt_bboxes[:, 0] + gt_bboxes[:, 2]) / 2.0, (gt_bboxes[:, 1] + gt_bboxes[:, 3]) / 2.0
        gt_points = torch.stack((gt_cx, gt_cy), 1)
        cx, cy = (priors[:, 0] + priors[:, 2]) / 2.0, (priors[:, 1] + priors[:, 3]) / 2.0
        distances = (torch.stack((cx, cy), 1)[:, None, :] - gt_points[None, :, :]).pow(2).sum(-1).sqrt()
        if (self.ignore_iof_thr > 0 and gt_bboxes_ignore is not None and gt_bboxes_ignore.numel() > 0
                and priors.numel() > 0):
            ignored = bbox_overlaps(priors, gt_bboxes_ignore, mode="iof").max(dim=1).values > self.ignore_iof_thr
            distances[ignored, :] = INF
            gt_inds[ignored] = -1
        candidates, start = [], 0
        for n in num_level_priors:
            k = min(self.topk, n)
            _, idx = distances[start:start + n, :].topk(k, dim=0, largest=False)
            candidates.append(idx + start)
            start += n
        candidates = torch.cat(candidates, dim=0)  # (K, G)
        cand_overlaps = overlaps[candidates, torch.arange(num_gt, device=overlaps.device)]
        thr = cand_overlaps.mean(0) + cand_overlaps.std(0)
        is_pos = cand_overlaps >= thr[None, :]
        flat = candidates + torch.arange(num_gt, device=candidates.device)[None, :] * num_priors
        flat = flat.view(-1)
        pcx = cx.view(1, -1).expand(num_gt, num_priors).contiguous().view(-1)[flat].view(-1, num_gt)
        pcy = cy.view(1, -1).expand(num_gt, num_priors).contiguous().view(-1)[flat].view(-1, num_gt)
        sides = torch.stack([pcx - gt_bboxes[:, 0], pcy - gt_bboxes[:, 1], gt_bboxes[:, 2] - pcx,
                             gt_bboxes[:, 3] - pcy], dim=1)
        is_pos = is_pos & (sides.min(dim=1).values > 0.01)
        overlaps_inf = torch.full_like(overlaps, -INF).t().contiguous().view(-1)
        index = flat[is_pos.view(-1)]
        overlaps_inf[index] = overlaps.t().contiguous().view(-1)[index]
        max_overlaps, argmax = overlaps_inf.view(num_gt, -1).t().max(dim=1)
        matched = max_overlaps != -INF
        gt_inds[matched] = argmax[matched] + 1
        return AssignResult(num_gt, gt_inds, max_overlaps, labels_from_gt_inds(gt_inds, gt_labels))
