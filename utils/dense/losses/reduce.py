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
    """Base: loss_weight and reduction, and mmdetection's call as a template method: the reduction override,
    an optional `shortcut` (a result that needs no element-wise loss), the subclass's `elementwise` loss and
    weight, then weight_reduce_loss times loss_weight."""

    def __init__(self, reduction: str = "mean", loss_weight: float = 1.0):
        self.reduction = check_reduction(reduction)
        self.loss_weight = float(loss_weight)

    def _reduction(self, override: str | None) -> str:
        return self.reduction if override is None else check_reduction(override)

    def __call__(self, pred: torch.Tensor, target, weight: torch.Tensor | None = None,
                 avg_factor: float | torch.Tensor | None = None, reduction_override: str | None = None
                 ) -> torch.Tensor:
        reduction = self._reduction(reduction_override)
        early = self.shortcut(pred, target, weight, reduction)
        if early is not None:
            return early
        loss, weight = self.elementwise(pred, target, weight)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)

    def shortcut(self, pred: torch.Tensor, target, weight: torch.Tensor | None,
                 reduction: str) -> torch.Tensor | None:
        """The call's result when it needs no element-wise loss (None: compute it)."""
        return None

    def elementwise(self, pred: torch.Tensor, target, weight: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The unreduced loss and the weight shaped to it."""
        raise NotImplementedError
