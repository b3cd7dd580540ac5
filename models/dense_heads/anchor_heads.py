"""RetinaHead, ATSSHead and GFLHead: anchor-based mmdetection heads with shared towers over the levels.

- RetinaHead: `stacked_convs` ReLU convs (no norm) per branch, 3x3 predictors of A x nc and A x 4 (DeltaXYWH
  deltas) channels, A = len(ratios) x scales_per_octave anchors per cell.
- ATSSHead: GN towers, one anchor per cell, class / delta (times a per-level Scale) / centerness (reg tower);
  decoded rows carry the centerness as their score-factor column.
- GFLHead: GN towers, class / 4 x (reg_max + 1) distance-bin logits (times a per-level Scale), distances in
  units of the level stride, decoded by the expectation of the bin softmax.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from models.dense_heads.base import DenseHead, head_layout
from models.dense_heads.conv_module import Scale, conv_tower, run_convs, tower_channels
from models.dense_heads.decode import (base_anchors, delta_decode, distance_decode, flat, grid_anchors, integral,
                                       xyxy2cxcywh)
from models.registry import register


class AnchorHead(DenseHead):
    """Towers, anchors and the DeltaXYWH decode shared by the anchor-based families."""

    def __init__(self, nc: int, ch: Sequence[int], cfg: dict | None = None):
        super().__init__(nc, ch, cfg)
        gen = self.cfg["anchor_generator"]
        self.na = len(gen["ratios"]) * int(gen["scales_per_octave"])
        self.cls_convs, self.reg_convs = conv_tower(self.cfg, ch[0]), conv_tower(self.cfg, ch[0])
        self.c_last = tower_channels(self.cfg, ch[0])

    def anchors(self, raw: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per level (H * W * A, 4) x1y1x2y2 anchors in pixels (mmdet's AnchorGenerator, centre offset 0)."""
        gen = self.cfg["anchor_generator"]
        out = []
        for r, s in zip(raw, self.stride.tolist()):
            base = base_anchors(s, gen["octave_base_scale"], int(gen["scales_per_octave"]), list(gen["ratios"]),
                                r.device, r.dtype)
            out.append(grid_anchors(r.shape[2], r.shape[3], s, base))
        return out

    def decode_deltas(self, raw: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, N, 4) cxcywh boxes from the delta predictions, and the per-level outs."""
        outs = self.split(raw)
        coder, hw = self.cfg["bbox_coder"], self.clip_hw(raw)
        boxes = [delta_decode(a, flat(b, 4), coder["target_means"], coder["target_stds"], hw)
                 for a, b in zip(self.anchors(raw), outs["bbox_preds"])]
        return xyxy2cxcywh(torch.cat(boxes, 1)), outs

    def cls_predictor(self, i: int) -> nn.Conv2d:
        return self.conv_cls_layer


@register(layout=head_layout("RetinaHead"), takes_list=True)
class RetinaHead(AnchorHead):
    family, loss_name = "RetinaHead", "retina"

    def __init__(self, nc: int, ch: Sequence[int], cfg: dict | None = None):
        super().__init__(nc, ch, cfg)
        self.retina_cls = nn.Conv2d(self.c_last, self.na * nc, 3, padding=1)
        self.retina_reg = nn.Conv2d(self.c_last, self.na * 4, 3, padding=1)

    @property
    def conv_cls_layer(self) -> nn.Conv2d:
        return self.retina_cls

    def out_channels(self) -> list[int]:
        return [self.na * self.nc, self.na * 4]

    def forward_level(self, x: torch.Tensor, i: int) -> list[torch.Tensor]:
        return [self.retina_cls(run_convs(self.cls_convs, x)), self.retina_reg(run_convs(self.reg_convs, x))]

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        boxes, outs = self.decode_deltas(raw)
        scores = torch.cat([flat(c, self.nc) for c in outs["cls_scores"]], 1).sigmoid()
        return torch.cat((boxes, scores), -1)


@register(layout=head_layout("ATSSHead"), takes_list=True)
class ATSSHead(AnchorHead):
    """Decoded rows [cx, cy, w, h, centerness, class scores]: mmdet thresholds and ranks sigmoid(cls) per level,
    then multiplies the centerness in (the contract's score factor, `has_objectness`)."""

    family, loss_name = "ATSSHead", "atss"
    has_objectness = True
    output_names = ("cls_scores", "bbox_preds", "centernesses")

    def __init__(self, nc: int, ch: Sequence[int], cfg: dict | None = None):
        super().__init__(nc, ch, cfg)
        self.atss_cls = nn.Conv2d(self.c_last, self.na * nc, 3, padding=1)
        self.atss_reg = nn.Conv2d(self.c_last, self.na * 4, 3, padding=1)
        self.atss_centerness = nn.Conv2d(self.c_last, self.na, 3, padding=1)
        self.scales = nn.ModuleList(Scale(1.0) for _ in range(self.nl))

    @property
    def conv_cls_layer(self) -> nn.Conv2d:
        return self.atss_cls

    def out_channels(self) -> list[int]:
        return [self.na * self.nc, self.na * 4, self.na]

    def forward_level(self, x: torch.Tensor, i: int) -> list[torch.Tensor]:
        reg = run_convs(self.reg_convs, x)
        return [self.atss_cls(run_convs(self.cls_convs, x)), self.scales[i](self.atss_reg(reg)).float(),
                self.atss_centerness(reg)]

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        boxes, outs = self.decode_deltas(raw)
        scores = torch.cat([flat(c, self.nc) for c in outs["cls_scores"]], 1).sigmoid()
        ctr = torch.cat([flat(c, 1) for c in outs["centernesses"]], 1).sigmoid()
        return torch.cat((boxes, ctr, scores), -1)


@register(layout=head_layout("GFLHead"), takes_list=True)
class GFLHead(AnchorHead):
    """Integral regression: 4 x (reg_max + 1) bin logits per anchor; decoded distance = E[bin] x stride."""

    family, loss_name = "GFLHead", "gfl"

    def __init__(self, nc: int, ch: Sequence[int], cfg: dict | None = None):
        super().__init__(nc, ch, cfg)
        self.reg_max = int(self.cfg["reg_max"])
        if self.na != 1:
            raise ValueError(f"GFLHead takes one anchor per cell (ratios [1.0], scales_per_octave 1), got {self.na}")
        self.gfl_cls = nn.Conv2d(self.c_last, nc, 3, padding=1)
        self.gfl_reg = nn.Conv2d(self.c_last, 4 * (self.reg_max + 1), 3, padding=1)
        self.scales = nn.ModuleList(Scale(1.0) for _ in range(self.nl))

    @property
    def conv_cls_layer(self) -> nn.Conv2d:
        return self.gfl_cls

    def out_channels(self) -> list[int]:
        return [self.nc, 4 * (self.reg_max + 1)]

    def forward_level(self, x: torch.Tensor, i: int) -> list[torch.Tensor]:
        return [self.gfl_cls(run_convs(self.cls_convs, x)),
                self.scales[i](self.gfl_reg(run_convs(self.reg_convs, x))).float()]

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        outs, hw = self.split(raw), self.clip_hw(raw)
        boxes = []
        for a, b, s in zip(self.anchors(raw), outs["bbox_preds"], self.stride.tolist()):
            centres = (a[:, :2] + a[:, 2:]) / 2
            boxes.append(distance_decode(centres, integral(flat(b, 4 * (self.reg_max + 1)), self.reg_max) * s, hw))
        scores = torch.cat([flat(c, self.nc) for c in outs["cls_scores"]], 1).sigmoid()
        return torch.cat((xyxy2cxcywh(torch.cat(boxes, 1)), scores), -1)
