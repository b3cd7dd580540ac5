"""Box regression losses: IoU (linear / square / log), GIoU, L1 and smooth L1, mmdetection's semantics.

IoU and GIoU take xyxy boxes (n, 4). A weight with no positive entry short-cuts to (pred * weight).sum(),
a zero that keeps the graph, as mmdetection does; a (n, 4) weight is averaged to (n,) for the IoU losses.
"""
from __future__ import annotations

import torch

from utils.dense.losses.reduce import Loss
from utils.dense.overlaps import bbox_overlaps

IOU_MODES = ("linear", "square", "log")


def _no_positive_weight(pred: torch.Tensor, weight: torch.Tensor | None, reduction: str) -> torch.Tensor | None:
    if weight is not None and not torch.any(weight > 0) and reduction != "none":
        if pred.dim() == weight.dim() + 1:
            weight = weight.unsqueeze(1)
        return (pred * weight).sum()
    return None


def iou_loss(pred: torch.Tensor, target: torch.Tensor, mode: str = "log", eps: float = 1e-6) -> torch.Tensor:
    """(n,) 1 - IoU, 1 - IoU^2 or -log(IoU), IoU clamped at eps."""
    ious = bbox_overlaps(pred, target, is_aligned=True).clamp(min=eps)
    if mode == "linear":
        return 1 - ious
    if mode == "square":
        return 1 - ious ** 2
    return -ious.log()


def giou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(n,) 1 - GIoU."""
    return 1 - bbox_overlaps(pred, target, mode="giou", is_aligned=True, eps=eps)


class BoxLoss(Loss):
    """mmdetection's box-loss call: a weight with no positive entry short-cuts to (pred * weight).sum()."""

    def shortcut(self, pred, target, weight, reduction) -> torch.Tensor | None:
        return _no_positive_weight(pred, weight, reduction)


def _per_box(weight: torch.Tensor | None) -> torch.Tensor | None:
    """A (n, 4) weight averaged to (n,), as the IoU losses weigh boxes, not coordinates."""
    return weight.mean(-1) if weight is not None and weight.dim() > 1 else weight


class IoULoss(BoxLoss):
    def __init__(self, linear: bool = False, eps: float = 1e-6, reduction: str = "mean", loss_weight: float = 1.0,
                 mode: str = "log"):
        if mode not in IOU_MODES:
            raise ValueError(f"IoULoss mode '{mode}' is not one of {IOU_MODES}")
        super().__init__(reduction, loss_weight)
        self.mode = "linear" if linear else mode
        self.linear, self.eps = linear, float(eps)

    def elementwise(self, pred, target, weight):
        return iou_loss(pred, target, self.mode, self.eps), _per_box(weight)


class GIoULoss(BoxLoss):
    def __init__(self, eps: float = 1e-6, reduction: str = "mean", loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.eps = float(eps)

    def elementwise(self, pred, target, weight):
        return giou_loss(pred, target, self.eps), _per_box(weight)


class CoordinateLoss(BoxLoss):
    """L1-type losses on the coordinate differences; an empty target gives pred.sum() * 0."""

    def shortcut(self, pred, target, weight, reduction) -> torch.Tensor | None:
        zero = super().shortcut(pred, target, weight, reduction)
        return pred.sum() * 0 if zero is None and target.numel() == 0 else zero

    def elementwise(self, pred, target, weight):
        _same_shape(pred, target)
        return self.distance((pred - target).abs()), weight

    def distance(self, diff: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class L1Loss(CoordinateLoss):
    def distance(self, diff: torch.Tensor) -> torch.Tensor:
        return diff


class SmoothL1Loss(CoordinateLoss):
    def __init__(self, beta: float = 1.0, reduction: str = "mean", loss_weight: float = 1.0):
        if beta <= 0:
            raise ValueError(f"SmoothL1Loss beta must be > 0, got {beta}")
        super().__init__(reduction, loss_weight)
        self.beta = float(beta)

    def distance(self, diff: torch.Tensor) -> torch.Tensor:
        return torch.where(diff < self.beta, 0.5 * diff * diff / self.beta, diff - 0.5 * self.beta)


def _same_shape(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
