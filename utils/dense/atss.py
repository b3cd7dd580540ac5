"""ATSS (Zhang et al. 2020) head math with mmdetection's semantics (ATSSHead).

Per level, avg_factor = sum over images of max(positives, 1): focal loss / avg_factor; GIoU on decoded
boxes weighted by the centerness target, summed per level and then divided by max(sum over levels of the
centerness targets, 1); BCE on the centerness / avg_factor. The centerness target uses the anchor centre
against the assigned gt. Defaults: configs/atss/atss_r50_fpn_1x_coco.py of mmdetection 3.3.
"""
from __future__ import annotations

from typing import Sequence

import torch

from utils.dense.anchor_head import AnchorHeadMath, Outs, flat_level

ATSS_DEFAULTS = {
    "num_classes": 80,
    "stacked_convs": 4, "feat_channels": 256, "norm_cfg": {"type": "GN", "num_groups": 32, "requires_grad": True},
    "anchor_generator": {"type": "AnchorGenerator", "ratios": [1.0], "octave_base_scale": 8, "scales_per_octave": 1,
                         "strides": [8, 16, 32, 64, 128]},
    "bbox_coder": {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0, 0.0, 0.0, 0.0],
                   "target_stds": [0.1, 0.1, 0.2, 0.2]},
    "loss_cls": {"type": "FocalLoss", "use_sigmoid": True, "gamma": 2.0, "alpha": 0.25, "loss_weight": 1.0},
    "loss_bbox": {"type": "GIoULoss", "loss_weight": 2.0},
    "loss_centerness": {"type": "CrossEntropyLoss", "use_sigmoid": True, "loss_weight": 1.0},
    "train_cfg": {"assigner": {"type": "ATSSAssigner", "topk": 9}, "allowed_border": -1, "pos_weight": -1,
                  "debug": False},
    "test_cfg": {"nms_pre": 1000, "min_bbox_size": 0, "score_thr": 0.05, "nms": {"type": "nms", "iou_threshold": 0.6},
                 "max_per_img": 100},
}


def anchor_centerness(anchors: torch.Tensor, gts: torch.Tensor) -> torch.Tensor:
    """sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)) of the anchor centres inside their gt boxes."""
    cx, cy = (anchors[:, 2] + anchors[:, 0]) / 2, (anchors[:, 3] + anchors[:, 1]) / 2
    lr = torch.stack([cx - gts[:, 0], gts[:, 2] - cx], dim=1)
    tb = torch.stack([cy - gts[:, 1], gts[:, 3] - cy], dim=1)
    return torch.sqrt((lr.min(dim=-1)[0] / lr.max(dim=-1)[0]) * (tb.min(dim=-1)[0] / tb.max(dim=-1)[0]))


class ATSSMath(AnchorHeadMath):
    head_type = "ATSSHead"
    LOSS_NAMES = ("loss_cls", "loss_bbox", "loss_centerness")
    # the trainer's three logged items: name -> the loss keys summed into it (utils/dense/loss_items.grouped_items)
    LOSS_ITEMS = (("box", ("loss_bbox",)), ("cls", ("loss_cls",)), ("ctr", ("loss_centerness",)))
    DEFAULTS = ATSS_DEFAULTS
    MATH_KEYS = ("num_classes", "anchor_generator", "bbox_coder", "loss_cls", "loss_bbox", "loss_centerness",
                 "train_cfg", "test_cfg")
    forward_output_names = ("cls_scores", "bbox_preds", "centernesses")
    score_factor_name = "centernesses"
    reg_decoded_bbox = True  # the bbox loss compares decoded boxes with the gt boxes (fixed, as in mmdetection)

    def loss_by_feat(self, outs: Outs, gt_bboxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
                     img_size: int | Sequence[int],
                     gt_bboxes_ignore: Sequence[torch.Tensor | None] | None = None) -> dict[str, list[torch.Tensor]]:
        """{'loss_cls', 'loss_bbox', 'loss_centerness'}: each a list per level."""
        lt = self.level_targets(outs, gt_bboxes, gt_labels, img_size, gt_bboxes_ignore,
                                ("labels", "label_weights", "bbox_targets"))
        cls_scores, bbox_preds, centernesses = (lt.outs[k] for k in self.forward_output_names)
        anchors, avg_factor, n_img = lt.anchors, lt.avg_factor, lt.n_img
        labels_l, weights_l, targets_l = lt.levels["labels"], lt.levels["label_weights"], lt.levels["bbox_targets"]
        losses_cls, losses_bbox, losses_ctr, ctr_sums = [], [], [], []
        for lvl in range(len(cls_scores)):
            cls = flat_level(cls_scores[lvl], self.num_classes).contiguous()
            reg = flat_level(bbox_preds[lvl], 4)
            ctr = centernesses[lvl].permute(0, 2, 3, 1).reshape(-1)
            labels, targets = labels_l[lvl], targets_l[lvl]
            losses_cls.append(self.loss_cls(cls, labels, weights_l[lvl], avg_factor=avg_factor))
            pos = ((labels >= 0) & (labels < self.num_classes)).nonzero().squeeze(1)
            if len(pos) > 0:
                pos_anchors = anchors[lvl].repeat(n_img, 1)[pos]
                ctr_targets = anchor_centerness(pos_anchors, targets[pos])
                decoded = self.bbox_coder.decode(pos_anchors, reg[pos])
                losses_bbox.append(self.loss_bbox(decoded, targets[pos], weight=ctr_targets, avg_factor=1.0))
                losses_ctr.append(self.loss_centerness(ctr[pos], ctr_targets, avg_factor=avg_factor))
            else:
                losses_bbox.append(reg.sum() * 0)
                losses_ctr.append(ctr.sum() * 0)
                ctr_targets = targets.new_tensor(0.0)
            ctr_sums.append(ctr_targets.sum())
        bbox_avg = float(sum(ctr_sums).clamp_(min=1).item())
        return {"loss_cls": losses_cls, "loss_bbox": [x / bbox_avg for x in losses_bbox], "loss_centerness": losses_ctr}
