"""GFL (Li et al. 2020) head math with mmdetection's semantics (GFLHead): integral regression over reg_max+1
bins per side in units of the level stride, quality focal loss and distribution focal loss.

Per level: QFL / avg_factor (sum over images of max(positives, 1)) with target IoU(decoded pred, gt) at the gt
class; GIoU and DFL of the positives weighted by the detached max class probability, summed per level
(DFL divided by 4) and then divided by max(sum over levels of those weights, 1). Defaults:
configs/gfl/gfl_r50_fpn_1x_coco.py of mmdetection 3.3.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from utils.dense.anchor_head import AnchorHeadMath, Outs, flat_level
from utils.dense.head_config import number
from utils.dense.overlaps import bbox_overlaps
from utils.dense.predict import Detections, bbox_post_process, filter_scores_and_topk

GFL_DEFAULTS = {
    "num_classes": 80,
    "stacked_convs": 4, "feat_channels": 256, "norm_cfg": {"type": "GN", "num_groups": 32, "requires_grad": True},
    "anchor_generator": {"type": "AnchorGenerator", "ratios": [1.0], "octave_base_scale": 8, "scales_per_octave": 1,
                         "strides": [8, 16, 32, 64, 128]},
    "bbox_coder": {"type": "DistancePointBBoxCoder"},
    "loss_cls": {"type": "QualityFocalLoss", "use_sigmoid": True, "beta": 2.0, "loss_weight": 1.0},
    "loss_dfl": {"type": "DistributionFocalLoss", "loss_weight": 0.25},
    "reg_max": 16,
    "loss_bbox": {"type": "GIoULoss", "loss_weight": 2.0},
    "train_cfg": {"assigner": {"type": "ATSSAssigner", "topk": 9}, "allowed_border": -1, "pos_weight": -1,
                  "debug": False},
    "test_cfg": {"nms_pre": 1000, "min_bbox_size": 0, "score_thr": 0.05, "nms": {"type": "nms", "iou_threshold": 0.6},
                 "max_per_img": 100},
}


def integral(logits: torch.Tensor, reg_max: int) -> torch.Tensor:
    """(..., 4*(reg_max+1)) bin logits -> (n, 4) expected distances sum softmax * [0..reg_max]."""
    project = torch.linspace(0, reg_max, reg_max + 1, device=logits.device, dtype=logits.dtype)
    p = F.softmax(logits.reshape(-1, reg_max + 1), dim=1)
    return F.linear(p, project).reshape(-1, 4)


def anchor_center(anchors: torch.Tensor) -> torch.Tensor:
    return torch.stack([(anchors[..., 2] + anchors[..., 0]) / 2, (anchors[..., 3] + anchors[..., 1]) / 2], dim=-1)


class GFLMath(AnchorHeadMath):
    head_type = "GFLHead"
    LOSS_NAMES = ("loss_cls", "loss_bbox", "loss_dfl")
    # the trainer's three logged items: name -> the loss keys summed into it (utils/dense/loss_items.grouped_items)
    LOSS_ITEMS = (("box", ("loss_bbox",)), ("cls", ("loss_cls",)), ("dfl", ("loss_dfl",)))
    reg_decoded_bbox = False  # mmdetection's attribute; GFL regresses bin distributions, decoded for GIoU
    DEFAULTS = GFL_DEFAULTS
    MATH_KEYS = ("num_classes", "anchor_generator", "bbox_coder", "loss_cls", "loss_dfl", "reg_max", "loss_bbox",
                 "train_cfg", "test_cfg")

    def __init__(self, head_cfg: Mapping[str, Any] | None = None, where: str = "head_cfg"):
        super().__init__(head_cfg, where)
        self.reg_max = number(self.cfg, "reg_max", where, integer=True, minimum=1)
        self.bbox_channels = 4 * (self.reg_max + 1)

    def loss_by_feat(self, outs: Outs, gt_bboxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
                     img_size: int | Sequence[int],
                     gt_bboxes_ignore: Sequence[torch.Tensor | None] | None = None) -> dict[str, list[torch.Tensor]]:
        """{'loss_cls', 'loss_bbox', 'loss_dfl'}: each a list per level; bbox_preds are (N, 4*(reg_max+1), H, W)."""
        lt = self.level_targets(outs, gt_bboxes, gt_labels, img_size, gt_bboxes_ignore,
                                ("labels", "label_weights", "bbox_targets"))
        cls_scores, bbox_preds = lt.outs["cls_scores"], lt.outs["bbox_preds"]
        anchors, avg_factor, n_img, bins = lt.anchors, lt.avg_factor, lt.n_img, self.reg_max + 1
        labels_l, weights_l, targets_l = lt.levels["labels"], lt.levels["label_weights"], lt.levels["bbox_targets"]
        losses_cls, losses_bbox, losses_dfl, weight_sums = [], [], [], []
        for lvl, stride in enumerate(self.strides):
            cls = flat_level(cls_scores[lvl], self.num_classes)
            reg = flat_level(bbox_preds[lvl], 4 * bins)
            labels, targets = labels_l[lvl], targets_l[lvl]
            pos = ((labels >= 0) & (labels < self.num_classes)).nonzero().squeeze(1)
            score = weights_l[lvl].new_zeros(labels.shape)
            if len(pos) > 0:
                centers = anchor_center(anchors[lvl].repeat(n_img, 1)[pos]) / stride
                weight = cls.detach().sigmoid().max(dim=1)[0][pos]
                pos_reg = reg[pos]
                decoded = self.bbox_coder.decode(centers, integral(pos_reg, self.reg_max))
                gt = targets[pos] / stride
                score[pos] = bbox_overlaps(decoded.detach(), gt, is_aligned=True)
                corners = self.bbox_coder.encode(centers, gt, self.reg_max).reshape(-1)
                losses_bbox.append(self.loss_bbox(decoded, gt, weight=weight, avg_factor=1.0))
                losses_dfl.append(self.loss_dfl(pos_reg.reshape(-1, bins), corners,
                                                weight=weight[:, None].expand(-1, 4).reshape(-1), avg_factor=4.0))
            else:
                losses_bbox.append(reg.sum() * 0)
                losses_dfl.append(reg.sum() * 0)
                weight = reg.new_tensor(0)
            losses_cls.append(self.loss_cls(cls, (labels, score), weight=weights_l[lvl], avg_factor=avg_factor))
            weight_sums.append(weight.sum())
        avg = float(sum(weight_sums).clamp_(min=1).item())
        return {"loss_cls": losses_cls, "loss_bbox": [x / avg for x in losses_bbox],
                "loss_dfl": [x / avg for x in losses_dfl]}

    def _predict_one(self, cls, reg, priors, cfg, shape, factors, with_nms) -> Detections:
        nms_pre, score_thr = cfg.get("nms_pre", -1), cfg.get("score_thr", 0)
        boxes, scores, labels = [], [], []
        for c, r, p, stride in zip(cls, reg, priors, self.strides):
            dist = integral(r.permute(1, 2, 0), self.reg_max) * stride
            prob = c.permute(1, 2, 0).reshape(-1, self.num_classes).sigmoid()
            s, lab, _, kept = filter_scores_and_topk(prob, score_thr, nms_pre, {"bbox_pred": dist, "priors": p})
            boxes.append(self.bbox_coder.decode(anchor_center(kept["priors"]), kept["bbox_pred"], max_shape=shape))
            scores.append(s)
            labels.append(lab)
        return bbox_post_process(torch.cat(boxes), torch.cat(scores), torch.cat(labels), cfg, None, with_nms)
