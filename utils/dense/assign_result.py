"""The result of an assigner, in mmdetection's AssignResult convention."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AssignResult:
    """Per-prior assignment of one image.

    gt_inds: (P,) int64, 1-based: 0 = background (negative), -1 = ignored, k > 0 = gt k-1.
    max_overlaps: (P,) the overlap that decided it (meaning depends on the assigner, see each one).
    labels: (P,) int64, the gt class for positives and -1 for everything else.
    """

    num_gts: int
    gt_inds: torch.Tensor
    max_overlaps: torch.Tensor
    labels: torch.Tensor

    @property
    def num_priors(self) -> int:
        return int(self.gt_inds.numel())

    @property
    def pos_inds(self) -> torch.Tensor:
        """Indices of the positive priors, ascending (what mmdetection's PseudoSampler takes)."""
        return torch.nonzero(self.gt_inds > 0, as_tuple=False).squeeze(-1).unique()

    @property
    def neg_inds(self) -> torch.Tensor:
        """Indices of the negative (background) priors, ascending; ignored priors are neither."""
        return torch.nonzero(self.gt_inds == 0, as_tuple=False).squeeze(-1).unique()

    @property
    def pos_assigned_gt_inds(self) -> torch.Tensor:
        """0-based gt index of each positive, in pos_inds order."""
        return self.gt_inds[self.pos_inds] - 1


def labels_from_gt_inds(gt_inds: torch.Tensor, gt_labels: torch.Tensor) -> torch.Tensor:
    """The AssignResult labels: gt class of positives, -1 elsewhere."""
    labels = gt_inds.new_full(gt_inds.shape, -1)
    pos = gt_inds > 0
    if pos.any():
        labels[pos] = gt_labels[gt_inds[pos] - 1].long()
    return labels


def empty_result(num_gts: int, num_priors: int, like: torch.Tensor, background: bool = True) -> AssignResult:
    """All priors background (no gt) or, with background=False, all ignored; max_overlaps 0."""
    gt_inds = torch.full((num_priors,), 0 if background else -1, dtype=torch.long, device=like.device)
    labels = torch.full((num_priors,), -1, dtype=torch.long, device=like.device)
    return AssignResult(num_gts, gt_inds, like.new_zeros(num_priors), labels)
