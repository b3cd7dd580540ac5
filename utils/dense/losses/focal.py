"""Focal losses: sigmoid focal (Lin et al. 2017), quality focal and distribution focal (GFL, Li et al. 2020)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from utils.dense.losses.reduce import Loss


def focal_terms(pred: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25,
                activated: bool = False) -> torch.Tensor:
    """(N, C) unreduced focal loss against a (soft) one-hot target: of logits (mmdet's pure-PyTorch path) or,
    `activated`, of probabilities."""
    p = pred if activated else pred.sigmoid()
    bce = F.binary_cross_entropy if activated else F.binary_cross_entropy_with_logits
    target = target.type_as(pred)
    pt = (1 - p) * target + p * (1 - target)
    focal_weight = (alpha * target + (1 - alpha) * (1 - target)) * pt.pow(gamma)
    return bce(pred, target, reduction="none") * focal_weight


class FocalLoss(Loss):
    """Sigmoid focal loss; an integer target (N,) is one-hot encoded with num_classes meaning background."""

    def __init__(self, use_sigmoid: bool = True, gamma: float = 2.0, alpha: float = 0.25, reduction: str = "mean",
                 loss_weight: float = 1.0, activated: bool = False):
        if not use_sigmoid:
            raise ValueError("FocalLoss supports only use_sigmoid=True")
        super().__init__(reduction, loss_weight)
        self.use_sigmoid, self.gamma, self.alpha, self.activated = use_sigmoid, float(gamma), float(alpha), activated

    def elementwise(self, pred, target, weight):
        if pred.dim() != target.dim():
            num_classes = pred.size(1)
            target = F.one_hot(target, num_classes=num_classes + 1)[:, :num_classes]
        loss = focal_terms(pred, target, self.gamma, self.alpha, self.activated)
        if weight is not None and weight.shape != loss.shape:  # per prior (N,) or (N * C,) -> the loss's shape
            weight = weight.view(-1, 1) if weight.size(0) == loss.size(0) else weight.view(loss.size(0), -1)
        return loss, weight


def quality_focal_loss(pred: torch.Tensor, label: torch.Tensor, score: torch.Tensor, beta: float = 2.0,
                       activated: bool = False) -> torch.Tensor:
    """(N,) QFL: BCE(sigma, y) * |y - sigma|^beta summed over classes; y = score at the label, 0 elsewhere."""
    p = pred if activated else pred.sigmoid()
    bce = F.binary_cross_entropy if activated else F.binary_cross_entropy_with_logits
    loss = bce(pred, p.new_zeros(pred.shape), reduction="none") * p.pow(beta)
    pos = ((label >= 0) & (label < pred.size(1))).nonzero().squeeze(1)
    pos_label = label[pos].long()
    scale = score[pos] - p[pos, pos_label]
    loss[pos, pos_label] = bce(pred[pos, pos_label], score[pos], reduction="none") * scale.abs().pow(beta)
    return loss.sum(dim=1)


def quality_focal_loss_tensor_target(pred: torch.Tensor, target: torch.Tensor, beta: float = 2.0,
                                     activated: bool = False) -> torch.Tensor:
    """(N,) QFL against a soft one-hot target (N, C)."""
    if pred.shape != target.shape:
        raise ValueError(f"QFL target {tuple(target.shape)} does not match the prediction {tuple(pred.shape)}")
    p = pred if activated else pred.sigmoid()
    bce = F.binary_cross_entropy if activated else F.binary_cross_entropy_with_logits
    target = target.type_as(pred)
    loss = bce(pred, p.new_zeros(pred.shape), reduction="none") * p.pow(beta)
    pos = target != 0
    scale = target - p
    loss[pos] = bce(pred, target, reduction="none")[pos] * scale[pos].abs().pow(beta)
    return loss.sum(dim=1)


class QualityFocalLoss(Loss):
    """QFL; target is (labels (N,), scores (N,)) or a soft one-hot tensor (N, C)."""

    def __init__(self, use_sigmoid: bool = True, beta: float = 2.0, reduction: str = "mean", loss_weight: float = 1.0,
                 activated: bool = False):
        if not use_sigmoid:
            raise ValueError("QualityFocalLoss supports only use_sigmoid=True")
        super().__init__(reduction, loss_weight)
        self.use_sigmoid, self.beta, self.activated = use_sigmoid, float(beta), activated

    def elementwise(self, pred, target, weight):
        if isinstance(target, torch.Tensor):
            return quality_focal_loss_tensor_target(pred, target, self.beta, self.activated), weight
        label, score = target
        return quality_focal_loss(pred, label, score, self.beta, self.activated), weight


def distribution_focal_loss(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """(N,) DFL of bin logits (N, n+1) at a continuous target t (N,): CE at floor(t) and floor(t)+1, interpolated."""
    left = label.long()
    right = left + 1
    w_left = right.float() - label
    w_right = label - left.float()
    return (F.cross_entropy(pred, left, reduction="none") * w_left
            + F.cross_entropy(pred, right, reduction="none") * w_right)


class DistributionFocalLoss(Loss):
    def elementwise(self, pred, target, weight):
        return distribution_focal_loss(pred, target), weight
