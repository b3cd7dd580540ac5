"""MaxIoUAssigner (mmdetection semantics): each prior takes the gt it overlaps most, by IoU thresholds.

1. every prior starts ignored (-1);
2. max IoU over the gts in [0, neg_iou_thr) (or in [lo, hi) when a pair is given): background (0);
3. max IoU >= pos_iou_thr: that gt (the highest-IoU gt wins);
4. match_low_quality: each gt whose best IoU is >= min_pos_iou also takes its best prior(s) (all ties
   with gt_max_assign_all), later gts overriding earlier ones.
Priors whose IoF with an ignore box exceeds ignore_iof_thr (when > 0) get overlaps -1, so stay ignored.
max_overlaps is the max IoU over all gts, for every prior.
"""
from __future__ import annotations


import torch

from utils.dense.assign_result import AssignResult, labels_from_gt_inds
from utils.dense.overlaps import bbox_overlaps


class MaxIoUAssigner:
    inputs = "priors"  # assign(priors, gt_bboxes, gt_labels, gt_bboxes_ignore)

    def __init__(self, pos_iou_thr: float, neg_iou_thr: float | list[float], min_pos_iou: float = 0.0,
                 gt_max_assign_all: bool = True, ignore_iof_thr: float = -1, ignore_wrt_candidates: bool = True,
                 match_low_quality: bool = True, gpu_assign_thr: float = -1):
        if isinstance(neg_iou_thr, (list, tuple)):
            if len(neg_iou_thr) != 2 or neg_iou_thr[0] > neg_iou_thr[1]:
                raise ValueError(f"neg_iou_thr is a number or a [low, high] range, got {list(neg_iou_thr)}")
            neg_iou_thr = (float(neg_iou_thr[0]), float(neg_iou_thr[1]))
        else:
            neg_iou_thr = float(neg_iou_thr)
        self.pos_iou_thr = float(pos_iou_thr)
        self.neg_iou_thr = neg_iou_thr
        self.min_pos_iou = float(min_pos_iou)
        self.gt_max_assign_all = gt_max_assign_all
        self.ignore_iof_thr = ignore_iof_thr
        self.ignore_wrt_candidates = ignore_wrt_candidates
        self.match_low_quality = match_low_quality
        self.gpu_assign_thr = gpu_assign_thr  # accepted for config compatibility; assigns on the input's device

    def assign(self, priors: torch.Tensor, gt_bboxes: torch.Tensor, gt_labels: torch.Tensor,
               gt_bboxes_ignore: torch.Tensor | None = None) -> AssignResult:
        """Assign xyxy priors (P, 4) to gt boxes (G, 4) with labels (G,)."""
        overlaps = bbox_overlaps(gt_bboxes, priors)  # (G, P)
        if (self.ignore_iof_thr > 0 and gt_bboxes_ignore is not None and gt_bboxes_ignore.numel() > 0
                and priors.numel() > 0):
            if self.ignore_wrt_candidates:
                ignore_max = bbox_overlaps(priors, gt_bboxes_ignore, mode="iof").max(dim=1).values
            else:
                ignore_max = bbox_overlaps(gt_bboxes_ignore, priors, mode="iof").max(dim=0).values
            overlaps[:, ignore_max > self.ignore_iof_thr] = -1
        return self.assign_wrt_overlaps(overlaps, gt_labels)

    def assign_wrt_overlaps(self, overlaps: torch.Tensor, gt_labels: torch.Tensor) -> AssignResult:
        """The assignment from a (G, P) overlap matrix."""
        num_gts, num_priors = overlaps.shape
        gt_inds = overlaps.new_full((num_priors,), -1, dtype=torch.long)
        if num_gts == 0 or num_priors == 0:
            if num_gts == 0:
                gt_inds[:] = 0
            return AssignResult(num_gts, gt_inds, overlaps.new_zeros((num_priors,)),
                                overlaps.new_full((num_priors,), -1, dtype=torch.long))
        max_overlaps, argmax = overlaps.max(dim=0)
        gt_max, gt_argmax = overlaps.max(dim=1)
        if isinstance(self.neg_iou_thr, tuple):
            lo, hi = self.neg_iou_thr
            gt_inds[(max_overlaps >= lo) & (max_overlaps < hi)] = 0
        else:
            gt_inds[(max_overlaps >= 0) & (max_overlaps < self.neg_iou_thr)] = 0
        pos = max_overlaps >= self.pos_iou_thr
        gt_inds[pos] = argmax[pos] + 1
        if self.match_low_quality:
            for i in range(num_gts):
                if gt_max[i] >= self.min_pos_iou:
                    if self.gt_max_assign_all:
                        gt_inds[overlaps[i, :] == gt_max[i]] = i + 1
                    else:
                        gt_inds[gt_argmax[i]] = i + 1
        return AssignResult(num_gts, gt_inds, max_overlaps, labels_from_gt_inds(gt_inds, gt_labels))
