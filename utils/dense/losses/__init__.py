"""Losses with mmdetection's semantics (weight, reduction, avg_factor, loss_weight); see each module."""
from utils.dense.losses.box import GIoULoss, IoULoss, L1Loss, SmoothL1Loss
from utils.dense.losses.cross_entropy import CrossEntropyLoss
from utils.dense.losses.focal import DistributionFocalLoss, FocalLoss, QualityFocalLoss

__all__ = ["CrossEntropyLoss", "DistributionFocalLoss", "FocalLoss", "GIoULoss", "IoULoss", "L1Loss",
           "QualityFocalLoss", "SmoothL1Loss"]
