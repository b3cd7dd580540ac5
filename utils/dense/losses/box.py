"""Box regression losses: IoU (linear / square / log), GIoU, L1 and smooth L1, mmdetection's semantics.

IoU and GIoU take xyxy boxes (n, 4). A weight with no positive entry short-cuts to (pred * weight).sum(),
a zero that keeps the graph, as mmdetection does; a (n, 4) weight is averaged to (n,) for the IoU losses.
"""
from __future__ import annotations

import torch

from utils.dense.losses.reduce import Loss, weight_reduce_loss
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


class IoULoss(Loss):
    def __init__(self, linear: bool = False, eps: float = 1e-6, reduction: str = "mean", loss_weight: float = 1.0,
                 mode: str = "log"):
        if mode not in IOU_MODES:
            raise ValueError(f"IoULoss mode '{mode}' is not one of {IOU_MODES}")
        super().__init__(reduction, loss_weight)
        self.mode = "linear" if linear else mode
        self.linear, self.eps = linear, float(eps)

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                 avg_factor: float | None = None, reduction_override: str | None = None) -> torch.Tensor:
        reduction = self._reduction(reduction_override)
        zero = _no_positive_weight(pred, weight, reduction)
        if zero is not None:
            return zero
        if weight is not None and weight.dim() > 1:
            weight = weight.mean(-1)
        loss = iou_loss(pred, target, self.mode, self.eps)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)


class GIoULoss(Loss):
    def __init__(self, eps: float = 1e-6, reduction: str = "mean", loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.eps = float(eps)

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                 avg_factor: float | None = None, reduction_override: str | None = None) -> torch.Tensor:
        reduction = self._reduction(reduction_override)
        zero = _no_positive_weight(pred, weight, reduction)
        if zero is not None:
            return zero
        if weight is not None and weight.dim() > 1:
            weight = weight.mean(-1)
        return self.loss_weight * weight_reduce_loss(giou_loss(pred, target, self.eps), weight, reduction, avg_factor)


class L1Loss(Loss):
    def __call__(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                 avg_factor: float | None = None, reduction_override: str | None = None) -> torch.Tensor:
        reduction = self._reduction(reduction_override)
        zero = _no_positive_weight(pred, weight, reduction)
        if zero is not None:
            return zero
        if target.numel() == 0:
            return pred.sum() * 0
        _same_shape(pred, target)
        return self.loss_weight * weight_reduce_loss((pred - target).abs(), weight, reduction, avg_factor)


class SmoothL1Loss(Loss):
    def __init__(self, beta: float = 1.0, reduction: str = "mean", loss_weight: float = 1.0):
        if beta <= 0:
            raise ValueError(f"SmoothL1Loss beta must be > 0, got {beta}")
        super().__init__(reduction, loss_weight)
        self.beta = float(beta)

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                 avg_factor: float | None = None, reduction_override: str | None = None) -> torch.Tensor:
        reduction = self._reduction(reduction_override)
        zero = _no_positive_weight(pred, weight, reduction)
        if zero is not None:
            return zero
        if target.numel() == 0:
            return pred.sum() * 0
        _same_shape(pred, target)
        diff = (pred - target).abs()
        loss = torch.where(diff < self.beta, 0.5 * diff * diff / self.beta, diff - 0.5 * self.beta)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)


def _same_shape(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
