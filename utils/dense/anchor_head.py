"""What the anchor families (RetinaNet, ATSS, GFL) share: config, anchors of a batch, targets, predictions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from utils.dense.anchor_targets import AnchorTargets, anchor_targets_single, images_to_levels
from utils.dense.assign_result import AssignResult
from utils.dense.dense_predict import per_image, predict_single
from utils.dense.head_config import MODULE_KEYS, build_assigner, check_train_cfg, head_defaults, img_hw, number
from utils.dense.outs_check import check_outs
from utils.dense.predict import Detections, check_test_cfg
from utils.dense.registry import build_part

Outs = Mapping[str, Sequence[torch.Tensor]]


@dataclass
class LevelTargets:
    """The opening of every anchor family's loss_by_feat: checked outs, anchors per level, the targets of the
    batch split per level (`levels[key][lvl]`, images concatenated), avg_factor (sum of max(positives, 1))."""
    outs: dict[str, list[torch.Tensor]]
    anchors: list[torch.Tensor]
    levels: dict[str, list[torch.Tensor]]
    avg_factor: float
    n_img: int


class AnchorHeadMath:
    """Base of the anchor families; subclasses set DEFAULTS, MATH_KEYS, ASSIGNER_INPUTS, LOSS_NAMES (each a
    head_cfg loss built as the attribute of that name) and loss_by_feat."""

    head_type = ""
    DEFAULTS: dict = {}
    MATH_KEYS: tuple = ()
    ASSIGNER_INPUTS: tuple = ("priors", "priors_per_level")
    forward_output_names: tuple = ("cls_scores", "bbox_preds")
    score_factor_name: str | None = None  # the outs key whose sigmoid multiplies the scores at test time
    LOSS_NAMES: tuple = ()

    def __init__(self, head_cfg: Mapping[str, Any] | None = None, where: str = "head_cfg"):
        known = (*MODULE_KEYS, *self.MATH_KEYS)
        cfg = head_defaults(self.DEFAULTS, dict(head_cfg or {}), self.head_type, known, where)
        self.cfg, self.where = cfg, where
        self.num_classes = number(cfg, "num_classes", where, integer=True, minimum=1)
        self.prior_generator = build_part("prior_generator", cfg["anchor_generator"], f"{where}.anchor_generator")
        self.train_cfg = check_train_cfg(cfg.get("train_cfg"), f"{where}.train_cfg")
        self.test_cfg = check_test_cfg(cfg.get("test_cfg"), f"{where}.test_cfg")
        self.assigner = build_assigner(self.train_cfg, self.ASSIGNER_INPUTS, f"{where}.train_cfg")
        self.allowed_border = self.train_cfg.get("allowed_border", -1)
        self.pos_weight = self.train_cfg.get("pos_weight", -1)
        self.bbox_coder = build_part("bbox_coder", cfg["bbox_coder"], f"{where}.bbox_coder")
        for name in self.LOSS_NAMES:
            setattr(self, name, build_part("loss", cfg[name], f"{where}.{name}"))

    @property
    def strides(self) -> list[int]:
        return [s[0] for s in self.prior_generator.strides]

    @property
    def num_base_priors(self) -> int:
        """Anchors per location (the head's output channels are this times num_classes, and times 4)."""
        return self.prior_generator.num_base_priors[0]

    bbox_channels = 4  # regression outputs per anchor

    @property
    def output_channels(self) -> dict[str, int]:
        """Channels of each raw output map, keyed by forward_output_names."""
        a = self.num_base_priors
        per = {"cls_scores": a * self.num_classes, "bbox_preds": a * self.bbox_channels, "centernesses": a}
        return {k: per[k] for k in self.forward_output_names}

    def check_outs(self, outs: Outs) -> dict[str, list[torch.Tensor]]:
        """Every output present, one map per level, channels as output_channels (a clear error otherwise); float32."""
        return check_outs(outs, self.output_channels, self.prior_generator.num_levels, self.head_type)

    def priors(self, featmap_sizes: Sequence[Sequence[int]], device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """Anchors of one image, per level (H*W*A, 4) xyxy px."""
        return self.prior_generator.grid_priors([tuple(s) for s in featmap_sizes], device=device)

    def targets(self, featmap_sizes: Sequence[Sequence[int]], gt_bboxes: Sequence[torch.Tensor],
                gt_labels: Sequence[torch.Tensor], img_size: int | Sequence[int], device: torch.device | str,
                gt_bboxes_ignore: Sequence[torch.Tensor | None] | None = None
                ) -> tuple[list[torch.Tensor], list[AnchorTargets]]:
        """Anchors per level and the targets of each image."""
        shape = img_hw(img_size)
        sizes = [tuple(s) for s in featmap_sizes]
        anchors = self.priors(sizes, device)
        num_level = [a.size(0) for a in anchors]
        flat = torch.cat(anchors)
        valid = torch.cat(self.prior_generator.valid_flags(sizes, shape, device=device))
        ignore = gt_bboxes_ignore or [None] * len(gt_bboxes)
        per_img = [anchor_targets_single(flat, valid, num_level, b.to(flat), l.to(device), shape, self.assigner,
                                         self.num_classes, self.encode_targets, self.allowed_border,
                                         self.pos_weight, ig)
                   for b, l, ig in zip(gt_bboxes, gt_labels, ignore)]
        return anchors, per_img

    def level_targets(self, outs: Outs, gt_bboxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
                      img_size: int | Sequence[int], gt_bboxes_ignore: Sequence[torch.Tensor | None] | None,
                      keys: Sequence[str]) -> LevelTargets:
        """Checked outs, anchors and the `keys` of the targets (AnchorTargets fields) per level."""
        outs = self.check_outs(outs)
        cls_scores = outs["cls_scores"]
        anchors, per_img = self.targets([c.shape[-2:] for c in cls_scores], gt_bboxes, gt_labels, img_size,
                                        cls_scores[0].device, gt_bboxes_ignore)
        num_level = [a.size(0) for a in anchors]
        levels = {k: images_to_levels([getattr(t, k) for t in per_img], num_level) for k in keys}
        return LevelTargets(outs, anchors, levels, float(sum(t.num_pos for t in per_img)), cls_scores[0].size(0))

    def encode_targets(self, priors: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """Regression target of positives (the gt boxes themselves unless a subclass encodes them)."""
        return gt

    def assign(self, outs: Outs, gt_bboxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
               img_size: int | Sequence[int]) -> list[AssignResult]:
        """The assignment of each image over its (inside) anchors, levels concatenated stride-first."""
        outs = self.check_outs(outs)
        cls = outs["cls_scores"]
        _, per_img = self.targets([c.shape[-2:] for c in cls], gt_bboxes, gt_labels, img_size, cls[0].device)
        return [t.assign for t in per_img]

    def predict_by_feat(self, outs: Outs, img_size: int | Sequence[int], test_cfg: Mapping[str, Any] | None = None,
                        with_nms: bool = True) -> list[Detections]:
        """Per image (boxes xyxy (k, 4), scores (k,), labels (k,)) with mmdetection's test-time semantics.

        `test_cfg`, when given, replaces the head's test_cfg (as mmdetection's `cfg` argument does).
        """
        cfg = self.test_cfg if test_cfg is None else check_test_cfg(test_cfg, f"{self.where}.test_cfg")
        outs = self.check_outs(outs)
        shape = img_hw(img_size)
        cls = outs["cls_scores"]
        priors = self.priors([c.shape[-2:] for c in cls], cls[0].device)
        factors = self.score_factor_name
        return [self._predict_one(per_image(cls, i), per_image(outs["bbox_preds"], i), priors, cfg, shape,
                                  per_image(outs[factors], i) if factors else None, with_nms)
                for i in range(cls[0].size(0))]

    def _predict_one(self, cls, reg, priors, cfg, shape, factors, with_nms) -> Detections:
        return predict_single(cls, reg, priors, self.num_classes, cfg,
                              lambda p, d: self.bbox_coder.decode(p, d, max_shape=shape), factors, with_nms)


def flat_level(x: torch.Tensor, k: int) -> torch.Tensor:
    """(N, A*k, H, W) -> (N*H*W*A, k), image-major, in prior order."""
    return x.permute(0, 2, 3, 1).reshape(-1, k)
