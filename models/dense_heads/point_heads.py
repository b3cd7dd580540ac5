"""FCOSHead and YOLOXHead: the anchor-free (point-prior) mmdetection heads.

- FCOSHead: GN towers shared over the levels; class, (left, top, right, bottom) distances times a per-level
  Scale (exp'd; or relu'd, and times the stride at test time, with `norm_on_bbox`), and centerness from the
  class tower (or the reg tower with `centerness_on_reg`). Points at the cell centres.
- YOLOXHead: a decoupled head with its own BN + Swish towers per level, 1x1 predictors of class, box
  (dx, dy, log w, log h in stride units from the cell's top-left corner) and objectness.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from models.dense_heads.base import DenseHead, head_layout
from models.dense_heads.conv_module import Scale, conv_tower, run_convs, tower_channels
from models.dense_heads.decode import distance_decode, flat, grid_points, xyxy2cxcywh
from models.registry import register


@register(layout=head_layout("FCOSHead"), takes_list=True)
class FCOSHead(DenseHead):
    """Decoded rows [cx, cy, w, h, centerness, class scores]: mmdet thresholds and ranks sigmoid(cls) per level,
    then multiplies the centerness in (the contract's score factor, `has_objectness`)."""

    family, loss_name = "FCOSHead", "fcos"
    has_objectness = True
    output_names = ("cls_scores", "bbox_preds", "centernesses")

    def __init__(self, nc: int, ch: Sequence[int], cfg: dict | None = None):
        super().__init__(nc, ch, cfg)
        self.cls_convs, self.reg_convs = conv_tower(self.cfg, ch[0]), conv_tower(self.cfg, ch[0])
        c = tower_channels(self.cfg, ch[0])
        self.conv_cls = nn.Conv2d(c, nc, 3, padding=1)
        self.conv_reg = nn.Conv2d(c, 4, 3, padding=1)
        self.conv_centerness = nn.Conv2d(c, 1, 3, padding=1)
        self.scales = nn.ModuleList(Scale(1.0) for _ in range(self.nl))
        self.norm_on_bbox = bool(self.cfg["norm_on_bbox"])
        self.centerness_on_reg = bool(self.cfg["centerness_on_reg"])

    def out_channels(self) -> list[int]:
        return [self.nc, 4, 1]

    def forward_level(self, x: torch.Tensor, i: int) -> list[torch.Tensor]:
        cls_feat, reg_feat = run_convs(self.cls_convs, x), run_convs(self.reg_convs, x)
        ctr = self.conv_centerness(reg_feat if self.centerness_on_reg else cls_feat)
        box = self.scales[i](self.conv_reg(reg_feat)).float()
        if self.norm_on_bbox:
            box = box.clamp(min=0)
            if not self.training:
                box = box * self.stride[i]
        else:
            box = box.exp()
        return [self.conv_cls(cls_feat), box, ctr]

    def cls_predictor(self, i: int) -> nn.Conv2d:
        return self.conv_cls

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        outs, hw = self.split(raw), self.clip_hw(raw)
        boxes = [distance_decode(grid_points(b.shape[2], b.shape[3], s, 0.5, b.device, b.dtype), flat(b, 4), hw)
                 for b, s in zip(outs["bbox_preds"], self.stride.tolist())]
        scores = torch.cat([flat(c, self.nc) for c in outs["cls_scores"]], 1).sigmoid()
        ctr = torch.cat([flat(c, 1) for c in outs["centernesses"]], 1).sigmoid()
        return torch.cat((xyxy2cxcywh(torch.cat(boxes, 1)), ctr, scores), -1)


@register(layout=head_layout("YOLOXHead"), takes_list=True)
class YOLOXHead(DenseHead):
    """Decoded rows [cx, cy, w, h, objectness, class scores] (has_objectness: NMS multiplies them)."""

    family, loss_name = "YOLOXHead", "yolox"
    has_objectness = True
    multi_label = False  # mmdet's YOLOX: the best class per prior
    output_names = ("cls_scores", "bbox_preds", "objectnesses")

    def __init__(self, nc: int, ch: Sequence[int], cfg: dict | None = None):
        super().__init__(nc, ch, cfg)
        if self.cfg["use_depthwise"]:
            raise ValueError("YOLOXHead: use_depthwise is not supported here")
        c = tower_channels(self.cfg, ch[0])
        self.multi_level_cls_convs = nn.ModuleList(nn.Sequential(*conv_tower(self.cfg, ch[0])) for _ in ch)
        self.multi_level_reg_convs = nn.ModuleList(nn.Sequential(*conv_tower(self.cfg, ch[0])) for _ in ch)
        self.multi_level_conv_cls = nn.ModuleList(nn.Conv2d(c, nc, 1) for _ in ch)
        self.multi_level_conv_reg = nn.ModuleList(nn.Conv2d(c, 4, 1) for _ in ch)
        self.multi_level_conv_obj = nn.ModuleList(nn.Conv2d(c, 1, 1) for _ in ch)

    def out_channels(self) -> list[int]:
        return [self.nc, 4, 1]

    def forward_level(self, x: torch.Tensor, i: int) -> list[torch.Tensor]:
        cls_feat, reg_feat = self.multi_level_cls_convs[i](x), self.multi_level_reg_convs[i](x)
        return [self.multi_level_conv_cls[i](cls_feat), self.multi_level_conv_reg[i](reg_feat),
                self.multi_level_conv_obj[i](reg_feat)]

    def output_convs(self, layers: nn.Sequential) -> list[nn.Module | None]:
        """The class and objectness predictors of every level (mmdet gives both the 0.01 prior)."""
        return [*self.multi_level_conv_cls, *self.multi_level_conv_obj]

    def init_convs(self) -> None:
        """mmdet's YOLOX keeps PyTorch's default conv init (ConvModule: kaiming); only the biases get the prior."""

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        outs = self.split(raw)
        rows = []
        for c, b, o, s in zip(outs["cls_scores"], outs["bbox_preds"], outs["objectnesses"], self.stride.tolist()):
            p = grid_points(b.shape[2], b.shape[3], s, 0.0, b.device, b.dtype)
            d = flat(b, 4)
            xy, wh = d[..., :2] * s + p, d[..., 2:].exp() * s
            rows.append(torch.cat((xy, wh, flat(o, 1).sigmoid(), flat(c, self.nc).sigmoid()), -1))
        return torch.cat(rows, 1)
