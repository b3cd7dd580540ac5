"""RetinaNet (Lin et al. 2017) head math with mmdetection's semantics (RetinaHead on AnchorHead).

Per level, with one global avg_factor = sum over images of max(positives, 1): focal loss over every
non-ignored anchor and class, and L1 on the encoded deltas of the positives (or, with reg_decoded_bbox, the
bbox loss on decoded boxes). Defaults: configs/retinanet/retinanet_r50_fpn_1x_coco.py of mmdetection 3.3.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from utils.dense.anchor_head import AnchorHeadMath, Outs, flat_level
from utils.dense.head_config import flag

RETINA_DEFAULTS = {
    "num_classes": 80,
    "stacked_convs": 4, "feat_channels": 256, "norm_cfg": None,  # the module's (models/dense_heads)
    "anchor_generator": {"type": "AnchorGenerator", "octave_base_scale": 4, "scales_per_octave": 3,
                         "ratios": [0.5, 1.0, 2.0], "strides": [8, 16, 32, 64, 128]},
    "bbox_coder": {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0, 0.0, 0.0, 0.0],
                   "target_stds": [1.0, 1.0, 1.0, 1.0]},
    "loss_cls": {"type": "FocalLoss", "use_sigmoid": True, "gamma": 2.0, "alpha": 0.25, "loss_weight": 1.0},
    "loss_bbox": {"type": "L1Loss", "loss_weight": 1.0},
    "reg_decoded_bbox": False,
    "train_cfg": {"assigner": {"type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.4, "min_pos_iou": 0,
                               "ignore_iof_thr": -1},
                  "sampler": {"type": "PseudoSampler"}, "allowed_border": -1, "pos_weight": -1, "debug": False},
    "test_cfg": {"nms_pre": 1000, "min_bbox_size": 0, "score_thr": 0.05, "nms": {"type": "nms", "iou_threshold": 0.5},
                 "max_per_img": 100},
}


class RetinaMath(AnchorHeadMath):
    head_type = "RetinaHead"
    LOSS_NAMES = ("loss_cls", "loss_bbox")
    # the trainer's three logged items: name -> the loss keys summed into it (utils/dense/loss_items.grouped_items)
    LOSS_ITEMS = (("box", ("loss_bbox",)), ("cls", ("loss_cls",)), ("sum", ("loss_cls", "loss_bbox")))
    DEFAULTS = RETINA_DEFAULTS
    MATH_KEYS = ("num_classes", "anchor_generator", "bbox_coder", "loss_cls", "loss_bbox", "reg_decoded_bbox",
                 "train_cfg", "test_cfg")

    def __init__(self, head_cfg: Mapping[str, Any] | None = None, where: str = "head_cfg"):
        super().__init__(head_cfg, where)
        self.reg_decoded_bbox = flag(self.cfg, "reg_decoded_bbox", where)

    def encode_targets(self, priors: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return gt if self.reg_decoded_bbox else self.bbox_coder.encode(priors, gt)

    def loss_by_feat(self, outs: Outs, gt_bboxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
                     img_size: int | Sequence[int],
                     gt_bboxes_ignore: Sequence[torch.Tensor | None] | None = None) -> dict[str, list[torch.Tensor]]:
        """{'loss_cls': [per level], 'loss_bbox': [per level]} from outs cls_scores, bbox_preds (N, A*K, H, W)."""
        keys = ("labels", "label_weights", "bbox_targets", "bbox_weights")
        lt = self.level_targets(outs, gt_bboxes, gt_labels, img_size, gt_bboxes_ignore, keys)
        anchors, avg_factor, n_img = lt.anchors, lt.avg_factor, lt.n_img
        losses_cls, losses_bbox = [], []
        for lvl, (cls, reg) in enumerate(zip(lt.outs["cls_scores"], lt.outs["bbox_preds"])):
            labels, label_weights, bbox_targets, bbox_weights = (lt.levels[k][lvl] for k in keys)
            losses_cls.append(self.loss_cls(flat_level(cls, self.num_classes), labels, label_weights,
                                            avg_factor=avg_factor))
            pred = flat_level(reg, 4)
            if self.reg_decoded_bbox:
                pred = self.bbox_coder.decode(anchors[lvl].repeat(n_img, 1), pred)
            losses_bbox.append(self.loss_bbox(pred, bbox_targets, bbox_weights, avg_factor=avg_factor))
        return {"loss_cls": losses_cls, "loss_bbox": losses_bbox}
