"""The anchor-free detection head of YOLOv8 / YOLO11 (ultralytics 8): a DFL box branch and a class branch per level.

Which head a `Detect` row builds (one rule, see `models/detect.py`): `[nc, anchors]` builds YOLOv5's anchor-based
head, `[nc]` alone builds this one. An `anchors:` key in a YAML whose head is anchor-free is refused.

Per level i the box branch `cv2[i]` predicts 4 x reg_max logits (a distribution over the distances 0..reg_max-1,
in stride units, from the cell centre to the left, top, right and bottom sides) and the class branch `cv3[i]` nc
logits; there is no objectness. Training returns the raw per-level maps (B, 4*reg_max + nc, H, W) (the box
channels first, side-major); inference returns `(decoded (B, N, 4 + nc), raw)` with boxes [cx, cy, w, h] in
input pixels and sigmoid class scores, N = sum(H*W) in level order, row-major within a level.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn

from models.common import Conv, DWConv
from models.registry import Layout, Row, register

# a model with any of these rows gets the light (depth-wise) class branch, as the original decides
LIGHT_CLS_BRANCH_BLOCKS = ("C3k2", "C2fCIB", "A2C2f")


def dfl_layout(row: Row) -> Layout:
    """[reg_max] (default 16) -> DFL(reg_max); takes (B, 4 * reg_max, N) and gives (B, 4, N)."""
    return Layout(list(row.args[:1]), 4)


@register(layout=dfl_layout)
class DFL(nn.Module):
    """Distribution focal loss decode: the expectation of a softmax over reg_max bins (a fixed 1x1 conv of 0..reg_max-1)."""

    def __init__(self, c1: int = 16):
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(c1, dtype=torch.float).view(1, c1, 1, 1)
        self.c1 = c1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, a = x.shape  # (B, 4 * c1, N) -> (B, 4, N)
        return self.conv(x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)).view(b, 4, a)


def make_anchors(shapes: Sequence[tuple[int, int]], strides: Sequence[float], offset: float = 0.5,
                 device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell-centre points (N, 2) [x, y] in grid units and their strides (N, 1), level after level, row-major."""
    points, stride_col = [], []
    for (h, w), s in zip(shapes, strides):
        sy, sx = torch.meshgrid(torch.arange(h, device=device, dtype=dtype) + offset,
                                torch.arange(w, device=device, dtype=dtype) + offset, indexing="ij")
        points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_col.append(torch.full((h * w, 1), float(s), device=device, dtype=dtype))
    return torch.cat(points), torch.cat(stride_col)


def dist2bbox(distance: torch.Tensor, anchor_points: torch.Tensor, xywh: bool = True, dim: int = -1) -> torch.Tensor:
    """(left, top, right, bottom) distances from anchor points -> xywh (or xyxy) boxes."""
    lt, rb = distance.chunk(2, dim)
    x1y1, x2y2 = anchor_points - lt, anchor_points + rb
    if xywh:
        return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), dim)
    return torch.cat((x1y1, x2y2), dim)


def bbox2dist(anchor_points: torch.Tensor, bbox: torch.Tensor, reg_max: float) -> torch.Tensor:
    """xyxy boxes -> (left, top, right, bottom) distances, clamped to [0, reg_max - 0.01] (the DFL target)."""
    x1y1, x2y2 = bbox.chunk(2, -1)
    return torch.cat((anchor_points - x1y1, x2y2 - anchor_points), -1).clamp_(0, reg_max - 0.01)


def _count_nothing(m: nn.Module, x, y) -> None:
    m.total_ops += torch.zeros(1, dtype=torch.float64)


def anchor_free_layout(row: Row) -> Layout:
    """[nc] -> DetectV8(nc, ch, legacy); the class branch is the light one after a C3k2 / C2fCIB / A2C2f row."""
    if len(row.args) != 1 or not isinstance(row.args[0], int):
        raise ValueError(f"the anchor-free Detect takes [nc], got {row.args}")
    legacy = not any(name in LIGHT_CLS_BRANCH_BLOCKS for name in row.earlier)
    return Layout([row.args[0], list(row.c_in)], 0, kwargs={"legacy": legacy}, cls=DetectV8)


class DetectV8(nn.Module):
    """Anchor-free head: per level a box branch (two 3x3 Convs, 1x1 to 4*reg_max) and a class branch."""

    has_objectness = False
    has_anchors = False
    loss_name = "tal"  # utils/loss_v8.py: TaskAlignedAssigner + BCE + CIoU + DFL
    summary_counts_leaves = True  # ultralytics 8's summary counts leaf modules (models/yolo.Model.layer_count)

    def __init__(self, nc: int = 80, ch: Sequence[int] = (), reg_max: int = 16, legacy: bool = True):
        super().__init__()
        self.nc, self.nl, self.reg_max, self.legacy = nc, len(ch), reg_max, legacy
        self.no = nc + 4 * reg_max
        self.register_buffer("stride", torch.zeros(self.nl), persistent=False)  # set by Model
        c2, c3 = max(16, ch[0] // 4, reg_max * 4), max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1))
                                 for x in ch)
        if legacy:
            self.cv3 = nn.ModuleList(nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch)
        else:
            self.cv3 = nn.ModuleList(nn.Sequential(nn.Sequential(DWConv(x, x, 3), Conv(x, c3, 1)),
                                                   nn.Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)),
                                                   nn.Conv2d(c3, nc, 1)) for x in ch)
        self.dfl = DFL(reg_max) if reg_max > 1 else nn.Identity()
        self.export = False  # inference returns only the decoded tensor (TorchScript / ONNX)

    @staticmethod
    def thop_rules() -> dict:
        """ultralytics 8's FLOPs figure (ultralytics-thop 2.2): upsampling is free (attention's matmuls: Attention.extra_macs)."""
        return {nn.Upsample: _count_nothing}

    def forward(self, x: list[torch.Tensor]):
        raw = [torch.cat((self.cv2[i](x[i]), self.cv3[i](x[i])), 1) for i in range(self.nl)]
        if self.training:
            return raw
        out = self.decode(raw)
        return (out,) if self.export else (out, raw)

    def split(self, raw: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-level maps -> (box logits (B, 4*reg_max, N), class logits (B, nc, N))."""
        flat = torch.cat([r.flatten(2) for r in raw], 2)
        return flat.split((4 * self.reg_max, self.nc), 1)

    def anchor_points(self, raw: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 2) cell centres in grid units and (N, 1) strides for these maps."""
        return make_anchors([r.shape[2:] for r in raw], self.stride.tolist(), 0.5, raw[0].device, raw[0].dtype)

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        """Raw maps -> (B, N, 4 + nc): xywh in input pixels (DFL expectation around the cell centre), sigmoid scores."""
        box, cls = self.split(raw)
        points, strides = self.anchor_points(raw)
        boxes = dist2bbox(self.dfl(box), points.T.unsqueeze(0), xywh=True, dim=1) * strides.T
        return torch.cat((boxes, cls.sigmoid()), 1).transpose(1, 2)

    def output_convs(self, layers: nn.Sequential) -> list[nn.Module]:
        """The last conv of each level's class branch (where the class prior goes)."""
        return [c[-1] for c in self.cv3]

    def initialize_biases(self, class_freq: torch.Tensor | None = None, convs=None) -> None:
        """Box logits 2.0 (a flat distance distribution); class prior 5 objects over nc classes per 640 image."""
        for a, b, s in zip(self.cv2, self.cv3, self.stride.tolist()):
            a[-1].bias.data[:] = 2.0
            b[-1].bias.data[: self.nc] = math.log(5 / self.nc / (640 / s) ** 2)
