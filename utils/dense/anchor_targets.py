"""Per-image training targets of anchor heads (RetinaNet, ATSS, GFL), as mmdetection's AnchorHead builds them.

Anchors outside the image by more than allowed_border (when >= 0) are left out of the assignment and get
label num_classes with weight 0. Positives get their gt's label, label weight 1 (or pos_weight > 0) and
regression weight 1; negatives label weight 1; ignored anchors (gt_inds -1) weight 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from utils.dense.assign_result import AssignResult


@dataclass
class AnchorTargets:
    """Targets of one image over all its anchors (P,), and the assignment over the anchors inside it."""

    labels: torch.Tensor  # (P,) int64, num_classes = background
    label_weights: torch.Tensor  # (P,)
    bbox_targets: torch.Tensor  # (P, 4) encoded deltas or xyxy gt boxes
    bbox_weights: torch.Tensor  # (P, 4)
    assign: AssignResult  # over the inside anchors
    inside: torch.Tensor  # (P,) bool
    num_pos: int  # max(positives, 1), as mmdetection's SamplingResult counts it


def inside_flags(anchors: torch.Tensor, valid: torch.Tensor, img_shape: Sequence[int],
                 allowed_border: float) -> torch.Tensor:
    """Anchors within allowed_border px of the image (all valid ones when allowed_border < 0)."""
    if allowed_border < 0:
        return valid
    h, w = img_shape[:2]
    return (valid & (anchors[:, 0] >= -allowed_border) & (anchors[:, 1] >= -allowed_border)
            & (anchors[:, 2] < w + allowed_border) & (anchors[:, 3] < h + allowed_border))


def level_counts_inside(num_level: Sequence[int], inside: torch.Tensor) -> list[int]:
    return [int(f.sum()) for f in torch.split(inside, list(num_level))]


def assign_anchors(assigner: Any, anchors: torch.Tensor, num_level: Sequence[int], gt_bboxes: torch.Tensor,
                   gt_labels: torch.Tensor, gt_bboxes_ignore: torch.Tensor | None = None) -> AssignResult:
    """Call an assigner that takes priors (MaxIoU) or priors with level counts (ATSS)."""
    if assigner.inputs == "priors_per_level":
        return assigner.assign(anchors, num_level, gt_bboxes, gt_labels, gt_bboxes_ignore)
    return assigner.assign(anchors, gt_bboxes, gt_labels, gt_bboxes_ignore)


def anchor_targets_single(anchors: torch.Tensor, valid: torch.Tensor, num_level: Sequence[int], gt_bboxes: torch.Tensor,
                          gt_labels: torch.Tensor, img_shape: Sequence[int], assigner: Any, num_classes: int,
                          encode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                          allowed_border: float = -1, pos_weight: float = -1,
                          gt_bboxes_ignore: torch.Tensor | None = None) -> AnchorTargets:
    """Targets of one image; `encode(priors, gt)` makes regression targets (None: the gt boxes themselves)."""
    inside = inside_flags(anchors, valid, img_shape, allowed_border)
    if not inside.any():
        raise ValueError("no anchor lies inside the image; check the image size and allowed_border")
    inner = anchors[inside]
    result = assign_anchors(assigner, inner, level_counts_inside(num_level, inside), gt_bboxes, gt_labels,
                            gt_bboxes_ignore)
    n = inner.size(0)
    labels = inner.new_full((n,), num_classes, dtype=torch.long)
    label_weights = inner.new_zeros(n)
    bbox_targets, bbox_weights = torch.zeros_like(inner), torch.zeros_like(inner)
    pos, neg = result.pos_inds, result.neg_inds
    if len(pos) > 0:
        pos_gt = gt_bboxes[result.gt_inds[pos] - 1]
        bbox_targets[pos, :] = pos_gt if encode is None else encode(inner[pos], pos_gt)
        bbox_weights[pos, :] = 1.0
        labels[pos] = result.labels[pos]
        label_weights[pos] = 1.0 if pos_weight <= 0 else pos_weight
    if len(neg) > 0:
        label_weights[neg] = 1.0
    return AnchorTargets(_unmap(labels, inside, num_classes), _unmap(label_weights, inside, 0),
                         _unmap(bbox_targets, inside, 0), _unmap(bbox_weights, inside, 0), result, inside,
                         max(len(pos), 1))


def _unmap(data: torch.Tensor, inside: torch.Tensor, fill: float) -> torch.Tensor:
    if bool(inside.all()):
        return data
    out = data.new_full((inside.size(0),) + data.shape[1:], fill)
    out[inside] = data
    return out


def images_to_levels(per_image: Sequence[torch.Tensor], num_level: Sequence[int]) -> list[torch.Tensor]:
    """Per-image targets (P, ...) -> per-level (N * n_level, ...), image-major within a level."""
    stacked = torch.stack(list(per_image), 0)
    out, start = [], 0
    for n in num_level:
        chunk = stacked[:, start:start + n]
        out.append(chunk.reshape(-1, *chunk.shape[2:]))
        start += n
    return out
