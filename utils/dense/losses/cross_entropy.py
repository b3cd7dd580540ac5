"""CrossEntropyLoss with mmdetection's semantics: sigmoid BCE with logits (use_sigmoid) or softmax CE."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from utils.dense.losses.reduce import Loss, weight_reduce_loss


def _expand_onehot(labels: torch.Tensor, weights: torch.Tensor | None, channels: int,
                   ignore_index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integer labels (N,) -> binary (N, C) targets and weights; labels < 0, >= C or == ignore_index are zero."""
    bin_labels = labels.new_full((labels.size(0), channels), 0)
    valid = (labels >= 0) & (labels != ignore_index)
    inds = torch.nonzero(valid & (labels < channels), as_tuple=False)
    if inds.numel() > 0:
        bin_labels[inds, labels[inds]] = 1
    valid = valid.view(-1, 1).expand(labels.size(0), channels).float()
    bin_weights = valid if weights is None else weights.view(-1, 1).repeat(1, channels) * valid
    return bin_labels, bin_weights, valid


class CrossEntropyLoss(Loss):
    def __init__(self, use_sigmoid: bool = False, use_mask: bool = False, reduction: str = "mean",
                 class_weight: list[float] | None = None, ignore_index: int | None = None, loss_weight: float = 1.0,
                 avg_non_ignore: bool = False):
        if use_mask:
            raise ValueError("CrossEntropyLoss with use_mask (mask heads) is not supported here")
        super().__init__(reduction, loss_weight)
        self.use_sigmoid, self.use_mask = use_sigmoid, use_mask
        self.class_weight = class_weight
        self.ignore_index = ignore_index
        self.avg_non_ignore = avg_non_ignore

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                 avg_factor: float | None = None, reduction_override: str | None = None,
                 ignore_index: int | None = None) -> torch.Tensor:
        reduction = self._reduction(reduction_override)
        ignore = self.ignore_index if ignore_index is None else ignore_index
        ignore = -100 if ignore is None else ignore
        class_weight = None if self.class_weight is None else pred.new_tensor(self.class_weight)
        fn = self._binary if self.use_sigmoid else self._softmax
        return self.loss_weight * fn(pred, target, weight, class_weight, reduction, avg_factor, ignore)

    def _binary(self, pred, label, weight, class_weight, reduction, avg_factor, ignore) -> torch.Tensor:
        if pred.dim() != label.dim():
            label, weight, valid = _expand_onehot(label, weight, pred.size(-1), ignore)
        else:
            valid = ((label >= 0) & (label != ignore)).float()
            weight = valid if weight is None else weight * valid
        if avg_factor is None and self.avg_non_ignore and reduction == "mean":
            avg_factor = valid.sum().item()
        loss = F.binary_cross_entropy_with_logits(pred, label.float(), pos_weight=class_weight, reduction="none")
        return weight_reduce_loss(loss, weight.float(), reduction, avg_factor)

    def _softmax(self, pred, label, weight, class_weight, reduction, avg_factor, ignore) -> torch.Tensor:
        loss = F.cross_entropy(pred, label, weight=class_weight, reduction="none", ignore_index=ignore)
        if avg_factor is None and self.avg_non_ignore and reduction == "mean":
            avg_factor = label.numel() - (label == ignore).sum().item()
        return weight_reduce_loss(loss, None if weight is None else weight.float(), reduction, avg_factor)
