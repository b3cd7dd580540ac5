"""mmdetection's element-wise weighting and reduction shared by every loss."""
from __future__ import annotations

import torch

REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction '{reduction}' is not one of {REDUCTIONS}")
    return reduction


def reduce_loss(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def weight_reduce_loss(loss: torch.Tensor, weight: torch.Tensor | None = None, reduction: str = "mean",
                       avg_factor: float | torch.Tensor | None = None) -> torch.Tensor:
    """loss * weight, then reduced; with avg_factor, 'mean' is sum / (avg_factor + float32 eps)."""
    if weight is not None:
        loss = loss * weight
    if avg_factor is None:
        return reduce_loss(loss, reduction)
    if reduction == "mean":
        return loss.sum() / (avg_factor + torch.finfo(torch.float32).eps)
    if reduction != "none":
        raise ValueError('avg_factor can not be used with reduction="sum"')
    return loss


class Loss:
    """Base: loss_weight and reduction, and the reduction override of a call."""

    def __init__(self, reduction: str = "mean", loss_weight: float = 1.0):
        self.reduction = check_reduction(reduction)
        self.loss_weight = float(loss_weight)

    def _reduction(self, override: str | None) -> str:
        return self.reduction if override is None else check_reduction(override)
