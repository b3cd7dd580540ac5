"""YOLOX (Ge et al. 2021) head math with mmdetection's semantics (YOLOXHead): SimOTA assignment, objectness.

Priors are points at (x*stride, y*stride) (offset 0) used for decoding (xy = pred_xy*stride + prior,
wh = exp(pred_wh)*stride) and for the L1 targets; SimOTA receives them shifted by +0.5*stride and scores
sqrt(sigmoid(cls)*sigmoid(obj)). Losses (reduction sum, each / max(total positives, 1)): BCE objectness over
all priors, BCE class on positives against one_hot(label)*IoU, IoU 'square' on decoded positive boxes, and
with use_l1 (the last epochs, mmdetection's YOLOXModeSwitchHook) L1 on the raw predictions. Test time:
score = max_c sigmoid(cls) * sigmoid(obj) >= score_thr, class-aware NMS; no nms_pre and no max_per_img (as
mmdetection's YOLOXHead). Defaults: configs/yolox/yolox_s_8xb8-300e_coco.py of mmdetection 3.3.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from utils.dense.assign_result import AssignResult
from utils.dense.head_config import build_assigner, check_train_cfg
from utils.dense.point_head import Outs, PointHeadMath
from utils.dense.predict import Detections, batched_nms, check_test_cfg, nms_iou
from utils.dense.registry import build_part

YOLOX_DEFAULTS = {
    "num_classes": 80,
    "strides": [8, 16, 32],
    "loss_cls": {"type": "CrossEntropyLoss", "use_sigmoid": True, "reduction": "sum", "loss_weight": 1.0},
    "loss_bbox": {"type": "IoULoss", "mode": "square", "eps": 1e-16, "reduction": "sum", "loss_weight": 5.0},
    "loss_obj": {"type": "CrossEntropyLoss", "use_sigmoid": True, "reduction": "sum", "loss_weight": 1.0},
    "loss_l1": {"type": "L1Loss", "reduction": "sum", "loss_weight": 1.0},
    "train_cfg": {"assigner": {"type": "SimOTAAssigner", "center_radius": 2.5}},
    "test_cfg": {"score_thr": 0.01, "nms": {"type": "nms", "iou_threshold": 0.65}},
}


@dataclass
class YOLOXTargets:
    """Targets of one image: positives mask (P,), class (n_pos, C), objectness (P, 1), boxes and L1 (n_pos, 4)."""

    pos_mask: torch.Tensor
    cls_target: torch.Tensor
    obj_target: torch.Tensor
    bbox_target: torch.Tensor
    l1_target: torch.Tensor
    num_pos: int
    assign: AssignResult | None


class YOLOXMath(PointHeadMath):
    head_type = "YOLOXHead"
    DEFAULTS = YOLOX_DEFAULTS
    MATH_KEYS = ("num_classes", "strides", "prior_generator", "loss_cls", "loss_bbox", "loss_obj", "loss_l1",
                 "train_cfg", "test_cfg")
    POINT_OFFSET = 0
    forward_output_names = ("cls_scores", "bbox_preds", "objectnesses")

    def __init__(self, head_cfg: Mapping[str, Any] | None = None, where: str = "head_cfg", use_l1: bool = False):
        super().__init__(head_cfg, where)
        cfg = self.cfg
        self.train_cfg = check_train_cfg(cfg.get("train_cfg"), f"{where}.train_cfg")
        self.assigner = build_assigner(self.train_cfg, ("predictions",), f"{where}.train_cfg")
        self.loss_cls = build_part("loss", cfg["loss_cls"], f"{where}.loss_cls")
        self.loss_bbox = build_part("loss", cfg["loss_bbox"], f"{where}.loss_bbox")
        self.loss_obj = build_part("loss", cfg["loss_obj"], f"{where}.loss_obj")
        self.loss_l1 = build_part("loss", cfg["loss_l1"], f"{where}.loss_l1")
        self.use_l1 = use_l1  # switched on for the last epochs of a training run

    @property
    def LOSS_NAMES(self) -> tuple[str, ...]:  # noqa: N802 (the families' common attribute name)
        return ("loss_cls", "loss_bbox", "loss_obj") + (("loss_l1",) if self.use_l1 else ())

    def decode(self, priors: torch.Tensor, bbox_preds: torch.Tensor) -> torch.Tensor:
        """xyxy boxes from priors (P, 4) (x, y, stride_w, stride_h) and raw predictions (..., P, 4)."""
        xy = bbox_preds[..., :2] * priors[:, 2:] + priors[:, :2]
        wh = bbox_preds[..., 2:].exp() * priors[:, 2:]
        return torch.stack([xy[..., 0] - wh[..., 0] / 2, xy[..., 1] - wh[..., 1] / 2,
                            xy[..., 0] + wh[..., 0] / 2, xy[..., 1] + wh[..., 1] / 2], -1)

    def _flatten(self, outs: Outs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Priors (P, 4) with stride, cls (N, P, C), bbox (N, P, 4) and objectness (N, P) logits."""
        outs = self.check_outs(outs)
        cls_scores = outs["cls_scores"]
        n = cls_scores[0].size(0)
        priors = torch.cat(self.priors([c.shape[-2:] for c in cls_scores], cls_scores[0].device, with_stride=True))
        cls = torch.cat([c.permute(0, 2, 3, 1).reshape(n, -1, self.num_classes) for c in cls_scores], dim=1)
        reg = torch.cat([r.permute(0, 2, 3, 1).reshape(n, -1, 4) for r in outs["bbox_preds"]], dim=1)
        obj = torch.cat([o.permute(0, 2, 3, 1).reshape(n, -1) for o in outs["objectnesses"]], dim=1)
        return priors, cls, reg, obj

    def targets_single(self, priors: torch.Tensor, cls_preds: torch.Tensor, decoded: torch.Tensor,
                       objectness: torch.Tensor, gt_bboxes: torch.Tensor, gt_labels: torch.Tensor) -> YOLOXTargets:
        """Targets of one image from detached logits cls (P, C), objectness (P,) and decoded boxes (P, 4)."""
        num_priors, num_gts = priors.size(0), gt_bboxes.size(0)
        if num_gts == 0:
            z = cls_preds.new_zeros
            return YOLOXTargets(z(num_priors).bool(), z((0, self.num_classes)), z((num_priors, 1)), z((0, 4)),
                                z((0, 4)), 0, None)
        offset = torch.cat([priors[:, :2] + priors[:, 2:] * 0.5, priors[:, 2:]], dim=-1)
        scores = (cls_preds.sigmoid() * objectness.unsqueeze(1).sigmoid()).sqrt_()
        result = self.assigner.assign(offset, decoded, scores, gt_bboxes, gt_labels)
        pos = result.pos_inds
        cls_target = F.one_hot(result.labels[pos], self.num_classes) * result.max_overlaps[pos].unsqueeze(-1)
        obj_target = torch.zeros_like(objectness).unsqueeze(-1)
        obj_target[pos] = 1
        bbox_target = gt_bboxes[result.gt_inds[pos] - 1]
        l1_target = cls_preds.new_zeros((len(pos), 4))
        if self.use_l1:
            l1_target = self.l1_target(bbox_target, priors[pos])
        mask = torch.zeros_like(objectness).to(torch.bool)
        mask[pos] = 1
        return YOLOXTargets(mask, cls_target, obj_target, bbox_target, l1_target, len(pos), result)

    @staticmethod
    def l1_target(gt: torch.Tensor, priors: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        """((gt centre - prior) / stride, log(gt wh / stride + eps)) with the un-offset priors."""
        cxcy = (gt[:, :2] + gt[:, 2:]) / 2
        wh = gt[:, 2:] - gt[:, :2]
        return torch.cat([(cxcy - priors[:, :2]) / priors[:, 2:], torch.log(wh / priors[:, 2:] + eps)], dim=1)

    def _all_targets(self, priors, cls, boxes, obj, gt_bboxes, gt_labels) -> list[YOLOXTargets]:
        return [self.targets_single(priors, cls[i].detach(), boxes[i].detach(), obj[i].detach(),
                                    gt_bboxes[i].to(boxes), gt_labels[i].to(boxes.device)) for i in range(cls.size(0))]

    def assign(self, outs: Outs, gt_bboxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
               img_size: int | Sequence[int] | None = None) -> list[AssignResult]:
        """SimOTA's assignment of each image (it depends on the predictions in outs)."""
        priors, cls, reg, obj = self._flatten(outs)
        boxes = self.decode(priors, reg)
        out = []
        for i, t in enumerate(self._all_targets(priors, cls, boxes, obj, gt_bboxes, gt_labels)):
            p = priors.size(0)
            out.append(t.assign if t.assign is not None else AssignResult(
                0, torch.zeros(p, dtype=torch.long, device=priors.device), priors.new_zeros(p),
                torch.full((p,), -1, dtype=torch.long, device=priors.device)))
        return out

    def loss_by_feat(self, outs: Outs, gt_bboxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
                     img_size: int | Sequence[int] | None = None) -> dict[str, torch.Tensor]:
        """{'loss_cls', 'loss_bbox', 'loss_obj'} (+ 'loss_l1' with use_l1): single tensors."""
        priors, cls, reg, obj = self._flatten(outs)
        boxes = self.decode(priors, reg)
        per_img = self._all_targets(priors, cls, boxes, obj, gt_bboxes, gt_labels)
        num_pos = sum(t.num_pos for t in per_img)
        total = max(float(num_pos), 1.0)
        mask = torch.cat([t.pos_mask for t in per_img])
        cls_t, obj_t, bbox_t = (torch.cat([getattr(t, k) for t in per_img]) for k in ("cls_target", "obj_target",
                                                                                     "bbox_target"))
        losses = {}
        if num_pos > 0:
            losses["loss_cls"] = self.loss_cls(cls.view(-1, self.num_classes)[mask], cls_t) / total
            losses["loss_bbox"] = self.loss_bbox(boxes.view(-1, 4)[mask], bbox_t) / total
        else:
            losses["loss_cls"], losses["loss_bbox"] = cls.sum() * 0, boxes.sum() * 0
        losses["loss_obj"] = self.loss_obj(obj.view(-1, 1), obj_t) / total
        losses = {k: losses[k] for k in ("loss_cls", "loss_bbox", "loss_obj")}
        if self.use_l1:
            l1_t = torch.cat([t.l1_target for t in per_img])
            losses["loss_l1"] = self.loss_l1(reg.view(-1, 4)[mask], l1_t) / total if num_pos > 0 else reg.sum() * 0
        return losses

    def predict_by_feat(self, outs: Outs, img_size: int | Sequence[int] | None = None,
                        test_cfg: Mapping[str, Any] | None = None, with_nms: bool = True) -> list[Detections]:
        """Per image (boxes, scores, labels); one label per prior; nms_pre and max_per_img are not applied."""
        cfg = self.test_cfg if test_cfg is None else check_test_cfg(test_cfg, f"{self.where}.test_cfg")
        priors, cls, reg, obj = (x.detach() for x in self._flatten(outs))
        cls, obj = cls.sigmoid(), obj.sigmoid()
        boxes = self.decode(priors, reg)
        out = []
        for i in range(cls.size(0)):
            best, labels = torch.max(cls[i], 1)
            keep = obj[i] * best >= cfg.get("score_thr", 0)
            b, s, l = boxes[i][keep], best[keep] * obj[i][keep], labels[keep]
            if with_nms and b.numel() > 0:
                s, k = batched_nms(b, s, l, nms_iou(cfg))
                b, l = b[k], l[k]
            out.append((b, s, l))
        return out
