"""FCOS (Tian et al. 2019) head math with mmdetection's semantics (FCOSHead).

Targets: see fcos_targets.py. Losses over all images and levels at once (mmdetection returns single tensors):
focal loss / max(positives, 1); the bbox loss (IoU 'log' by default) on boxes decoded from (point, ltrb),
weighted by the centerness target and divided by max(sum of centerness targets, 1e-6); BCE on the centerness
/ max(positives, 1). With norm_on_bbox the targets are divided by the level stride (the module's forward
then gives relu'd, stride-free distances in training and multiplies by the stride in eval, as mmdetection's
FCOSHead does). Defaults: configs/fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py of mmdetection 3.3.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from utils.dense.assign_result import AssignResult
from utils.dense.dense_predict import per_image, predict_single
from utils.dense.fcos_targets import INF, FCOSTargetAssigner, FCOSTargets
from utils.dense.head_config import check_keys, flag, img_hw, number, part_error
from utils.dense.point_head import Outs, PointHeadMath
from utils.dense.predict import Detections, check_test_cfg
from utils.dense.registry import build_part

FCOS_DEFAULTS = {
    "num_classes": 80,
    "strides": [8, 16, 32, 64, 128],
    "regress_ranges": [[-1, 64], [64, 128], [128, 256], [256, 512], [512, INF]],
    "center_sampling": False,
    "center_sample_radius": 1.5,
    "norm_on_bbox": False,
    "bbox_coder": {"type": "DistancePointBBoxCoder"},
    "loss_cls": {"type": "FocalLoss", "use_sigmoid": True, "gamma": 2.0, "alpha": 0.25, "loss_weight": 1.0},
    "loss_bbox": {"type": "IoULoss", "loss_weight": 1.0},
    "loss_centerness": {"type": "CrossEntropyLoss", "use_sigmoid": True, "loss_weight": 1.0},
    "train_cfg": None,
    "test_cfg": {"nms_pre": 1000, "min_bbox_size": 0, "score_thr": 0.05, "nms": {"type": "nms", "iou_threshold": 0.5},
                 "max_per_img": 100},
}


def ltrb_centerness(ltrb: torch.Tensor) -> torch.Tensor:
    """sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)) of (n, 4) distances."""
    lr, tb = ltrb[:, [0, 2]], ltrb[:, [1, 3]]
    if len(lr) == 0:
        return lr[..., 0]
    return torch.sqrt((lr.min(dim=-1)[0] / lr.max(dim=-1)[0]) * (tb.min(dim=-1)[0] / tb.max(dim=-1)[0]))


class FCOSMath(PointHeadMath):
    head_type = "FCOSHead"
    LOSS_NAMES = ("loss_cls", "loss_bbox", "loss_centerness")
    DEFAULTS = FCOS_DEFAULTS
    MATH_KEYS = ("num_classes", "strides", "prior_generator", "regress_ranges", "center_sampling",
                 "center_sample_radius", "norm_on_bbox", "bbox_coder", "loss_cls", "loss_bbox", "loss_centerness",
                 "train_cfg", "test_cfg")
    POINT_OFFSET = 0.5
    forward_output_names = ("cls_scores", "bbox_preds", "centernesses")

    def __init__(self, head_cfg: Mapping[str, Any] | None = None, where: str = "head_cfg"):
        super().__init__(head_cfg, where)
        cfg = self.cfg
        check_keys(cfg.get("train_cfg") or {}, (), f"{where}.train_cfg", "FCOS train_cfg (FCOS has no assigner)")
        self.norm_on_bbox = flag(cfg, "norm_on_bbox", where)
        number(cfg, "center_sample_radius", where, minimum=0)
        try:
            self.target_assigner = FCOSTargetAssigner(self.num_classes, self.strides, cfg["regress_ranges"],
                                                      flag(cfg, "center_sampling", where), cfg["center_sample_radius"])
        except (ValueError, TypeError) as e:
            raise part_error(f"{where}.regress_ranges", e) from None
        self.bbox_coder = build_part("bbox_coder", cfg["bbox_coder"], f"{where}.bbox_coder")
        self.loss_cls = build_part("loss", cfg["loss_cls"], f"{where}.loss_cls")
        self.loss_bbox = build_part("loss", cfg["loss_bbox"], f"{where}.loss_bbox")
        self.loss_centerness = build_part("loss", cfg["loss_centerness"], f"{where}.loss_centerness")

    def targets(self, featmap_sizes: Sequence[Sequence[int]], gt_bboxes: Sequence[torch.Tensor],
                gt_labels: Sequence[torch.Tensor], device: torch.device | str = "cpu"
                ) -> tuple[list[torch.Tensor], list[FCOSTargets]]:
        """Points per level and the targets of each image (bbox_targets in px, before the norm_on_bbox division)."""
        points = self.priors(featmap_sizes, device)
        ranges = self.target_assigner.expanded_ranges(points)
        flat, counts = torch.cat(points), [p.size(0) for p in points]
        return points, [self.target_assigner.targets_single(flat, ranges, counts, b.to(flat), l.to(device))
                        for b, l in zip(gt_bboxes, gt_labels)]

    def assign(self, outs: Outs, gt_bboxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
               img_size: int | Sequence[int] | None = None) -> list[AssignResult]:
        """Each image's point-to-gt choice as an AssignResult (max_overlaps 0: FCOS uses no overlaps)."""
        outs = self.check_outs(outs)
        cls = outs["cls_scores"]
        _, per_img = self.targets([c.shape[-2:] for c in cls], gt_bboxes, gt_labels, cls[0].device)
        return [t.as_assign_result(l.to(cls[0].device)) for t, l in zip(per_img, gt_labels)]

    def loss_by_feat(self, outs: Outs, gt_bboxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
                     img_size: int | Sequence[int] | None = None) -> dict[str, torch.Tensor]:
        """{'loss_cls', 'loss_bbox', 'loss_centerness'}: single tensors over all levels and images."""
        outs = self.check_outs(outs)
        cls_scores, bbox_preds, centernesses = outs["cls_scores"], outs["bbox_preds"], outs["centernesses"]
        n_img = cls_scores[0].size(0)
        points, per_img = self.targets([c.shape[-2:] for c in cls_scores], gt_bboxes, gt_labels, cls_scores[0].device)
        counts = [p.size(0) for p in points]
        labels_img = [t.labels.split(counts) for t in per_img]
        targets_img = [t.bbox_targets.split(counts) for t in per_img]
        labels = torch.cat([torch.cat([li[lvl] for li in labels_img]) for lvl in range(len(points))])
        bbox_targets = torch.cat([self._norm(torch.cat([ti[lvl] for ti in targets_img]), lvl)
                                  for lvl in range(len(points))])
        cls = torch.cat([c.permute(0, 2, 3, 1).reshape(-1, self.num_classes) for c in cls_scores])
        reg = torch.cat([r.permute(0, 2, 3, 1).reshape(-1, 4) for r in bbox_preds])
        ctr = torch.cat([c.permute(0, 2, 3, 1).reshape(-1) for c in centernesses])
        flat_points = torch.cat([p.repeat(n_img, 1) for p in points])
        pos = ((labels >= 0) & (labels < self.num_classes)).nonzero().reshape(-1)
        num_pos = max(float(len(pos)), 1.0)
        loss_cls = self.loss_cls(cls, labels, avg_factor=num_pos)
        pos_reg, pos_ctr, pos_targets = reg[pos], ctr[pos], bbox_targets[pos]
        ctr_targets = ltrb_centerness(pos_targets)
        ctr_denorm = max(float(ctr_targets.sum().detach()), 1e-6)
        if len(pos) > 0:
            pos_points = flat_points[pos]
            loss_bbox = self.loss_bbox(self.bbox_coder.decode(pos_points, pos_reg),
                                       self.bbox_coder.decode(pos_points, pos_targets),
                                       weight=ctr_targets, avg_factor=ctr_denorm)
            loss_ctr = self.loss_centerness(pos_ctr, ctr_targets, avg_factor=num_pos)
        else:
            loss_bbox, loss_ctr = pos_reg.sum(), pos_ctr.sum()
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "loss_centerness": loss_ctr}

    def _norm(self, targets: torch.Tensor, lvl: int) -> torch.Tensor:
        return targets / self.strides[lvl] if self.norm_on_bbox else targets

    def predict_by_feat(self, outs: Outs, img_size: int | Sequence[int], test_cfg: Mapping[str, Any] | None = None,
                        with_nms: bool = True) -> list[Detections]:
        """Per image (boxes, scores, labels); scores are sigmoid(cls) * sigmoid(centerness); bbox_preds in px."""
        cfg = self.test_cfg if test_cfg is None else check_test_cfg(test_cfg, f"{self.where}.test_cfg")
        outs = self.check_outs(outs)
        shape = img_hw(img_size)
        cls = outs["cls_scores"]
        points = self.priors([c.shape[-2:] for c in cls], cls[0].device)
        return [predict_single(per_image(cls, i), per_image(outs["bbox_preds"], i), points, self.num_classes, cfg,
                               lambda p, d: self.bbox_coder.decode(p, d, max_shape=shape),
                               per_image(outs["centernesses"], i), with_nms) for i in range(cls[0].size(0))]
