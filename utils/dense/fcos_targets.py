"""FCOS targets (mmdetection's FCOSHead._get_targets_single semantics): which gt each point regresses.

A point is a candidate for a gt when it lies inside the gt (all of l, t, r, b > 0) or, with center
sampling, inside the box of +-radius*stride around the gt centre clipped to the gt; and when the largest
of its l, t, r, b lies in its level's regress range [lo, hi] (inclusive). Among the candidate gts the one
with the smallest area wins. Background points get label num_classes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from utils.dense.assign_result import AssignResult, labels_from_gt_inds
from utils.dense.registry import number_text_hint

INF = 1e8


@dataclass
class FCOSTargets:
    """Targets of one image: labels (P,) (num_classes = background), bbox_targets (P, 4) l, t, r, b px and
    gt_inds (P,) 1-based (0 = background)."""

    labels: torch.Tensor
    bbox_targets: torch.Tensor
    gt_inds: torch.Tensor

    def as_assign_result(self, gt_labels: torch.Tensor) -> AssignResult:
        """The same choice in AssignResult form (max_overlaps left 0: FCOS uses no overlaps)."""
        return AssignResult(len(gt_labels), self.gt_inds, self.bbox_targets.new_zeros(len(self.gt_inds)),
                            labels_from_gt_inds(self.gt_inds, gt_labels))


class FCOSTargetAssigner:
    """Point-to-gt rule of FCOS with its regress ranges and optional center sampling."""

    def __init__(self, num_classes: int, strides: Sequence[int],
                 regress_ranges: Sequence[Sequence[float]] = ((-1, 64), (64, 128), (128, 256), (256, 512), (512, INF)),
                 center_sampling: bool = False, center_sample_radius: float = 1.5):
        if len(regress_ranges) != len(strides):
            raise ValueError(f"{len(regress_ranges)} regress_ranges for {len(strides)} strides")
        for r in regress_ranges:
            numbers = isinstance(r, (list, tuple)) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in r)
            if not numbers or len(r) != 2 or r[0] > r[1]:
                raise ValueError(f"a regress range is [low, high] (numbers, low <= high), got {r!r}"
                                 f"{number_text_hint(r)}")
        self.num_classes = num_classes
        self.strides = [s[0] if isinstance(s, (list, tuple)) else s for s in strides]
        self.regress_ranges = [(float(a), float(b)) for a, b in regress_ranges]
        self.center_sampling = center_sampling
        self.center_sample_radius = float(center_sample_radius)

    def expanded_ranges(self, points: Sequence[torch.Tensor]) -> torch.Tensor:
        """(P, 2) regress range of every point of the concatenated levels."""
        return torch.cat([p.new_tensor(self.regress_ranges[i])[None].expand(p.size(0), 2)
                          for i, p in enumerate(points)])

    def targets_single(self, points: torch.Tensor, regress_ranges: torch.Tensor, num_points_per_lvl: Sequence[int],
                       gt_bboxes: torch.Tensor, gt_labels: torch.Tensor) -> FCOSTargets:
        """Targets of one image for points (P, 2) of all levels concatenated."""
        num_points, num_gts = points.size(0), gt_bboxes.size(0)
        if num_gts == 0:
            return FCOSTargets(gt_labels.new_full((num_points,), self.num_classes),
                               gt_bboxes.new_zeros((num_points, 4)),
                               torch.zeros(num_points, dtype=torch.long, device=points.device))
        areas = ((gt_bboxes[:, 2] - gt_bboxes[:, 0]) * (gt_bboxes[:, 3] - gt_bboxes[:, 1]))[None].repeat(num_points, 1)
        ranges = regress_ranges[:, None, :].expand(num_points, num_gts, 2)
        gts = gt_bboxes[None].expand(num_points, num_gts, 4)
        xs = points[:, 0][:, None].expand(num_points, num_gts)
        ys = points[:, 1][:, None].expand(num_points, num_gts)
        bbox_targets = torch.stack((xs - gts[..., 0], ys - gts[..., 1], gts[..., 2] - xs, gts[..., 3] - ys), -1)
        if self.center_sampling:
            inside = self._center_sample(gts, xs, ys, num_points_per_lvl)
        else:
            inside = bbox_targets.min(-1)[0] > 0
        max_dist = bbox_targets.max(-1)[0]
        in_range = (max_dist >= ranges[..., 0]) & (max_dist <= ranges[..., 1])
        areas[inside == 0] = INF
        areas[in_range == 0] = INF
        min_area, min_inds = areas.min(dim=1)
        labels = gt_labels[min_inds]
        background = min_area == INF
        labels[background] = self.num_classes
        gt_inds = min_inds + 1
        gt_inds[background] = 0
        return FCOSTargets(labels, bbox_targets[range(num_points), min_inds], gt_inds)

    def _center_sample(self, gts: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor,
                       num_points_per_lvl: Sequence[int]) -> torch.Tensor:
        """(P, G) point inside the +-radius*stride box around the gt centre, clipped to the gt."""
        cx, cy = (gts[..., 0] + gts[..., 2]) / 2, (gts[..., 1] + gts[..., 3]) / 2
        stride = cx.new_zeros(cx.shape)
        begin = 0
        for lvl, n in enumerate(num_points_per_lvl):
            stride[begin:begin + n] = self.strides[lvl] * self.center_sample_radius
            begin += n
        x_min, y_min, x_max, y_max = cx - stride, cy - stride, cx + stride, cy + stride
        cg0 = torch.where(x_min > gts[..., 0], x_min, gts[..., 0])
        cg1 = torch.where(y_min > gts[..., 1], y_min, gts[..., 1])
        cg2 = torch.where(x_max > gts[..., 2], gts[..., 2], x_max)
        cg3 = torch.where(y_max > gts[..., 3], gts[..., 3], y_max)
        return torch.stack((xs - cg0, ys - cg1, cg2 - xs, cg3 - ys), -1).min(-1)[0] > 0
