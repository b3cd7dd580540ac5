"""The multi-scale YOLO detection head."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn

from models.detect_v8 import anchor_free_layout
from models.registry import Layout, Row, register


def detect_layout(row: Row) -> Layout:
    """The one rule for a `Detect` row: `[nc, anchors]` -> the anchor-based Detect(nc, anchors, ch) of YOLOv5
    (`anchors: 3` means 3 placeholder anchors per level); `[nc]` alone -> the anchor-free DetectV8 of YOLOv8/11."""
    if len(row.args) == 1:
        return anchor_free_layout(row)
    if len(row.args) != 2:
        raise ValueError(f"Detect takes [nc, anchors] (anchor-based) or [nc] (anchor-free), got {row.args}")
    nc, anchors = row.args
    if isinstance(anchors, int):
        anchors = [list(range(anchors * 2))] * len(row.c_in)
    if len(anchors) != len(row.c_in):
        raise ValueError(f"{len(anchors)} anchor levels but {len(row.c_in)} inputs in `from`")
    return Layout([nc, anchors, list(row.c_in)], 0)


@register(layout=detect_layout)
class Detect(nn.Module):
    """One 1x1 conv per level predicting `na` anchors x (4 box + 1 objectness + nc classes).

    `anchors` is a buffer (nl, na, 2) in grid units (pixels / stride) once the Model has set
    `stride`. Training returns the raw per-level maps (B, na, H, W, 5+nc); inference returns
    `(decoded (B, N, 5+nc), raw)` with boxes as [cx, cy, w, h] in input pixels and sigmoid scores.
    """

    has_objectness = True
    has_anchors = True
    loss_name = "yolov5"  # utils/loss.py: build_targets + objectness/class BCE + CIoU

    def __init__(self, nc: int = 80, anchors: Sequence[Sequence[float]] = (), ch: Sequence[int] = (),
                 inplace: bool = True):
        super().__init__()
        self.nc = nc
        self.no = nc + 5
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2))
        self.register_buffer("stride", torch.zeros(self.nl), persistent=False)  # set by Model
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)
        self.inplace = inplace
        self.export = False  # inference returns only the decoded tensor (TorchScript / ONNX)

    def forward(self, x: list[torch.Tensor]):
        raw, decoded = [], []
        for i in range(self.nl):
            p = self.m[i](x[i])
            bs, _, ny, nx = p.shape
            p = p.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            raw.append(p)
            if not self.training:
                decoded.append(self.decode(i, p).view(bs, -1, self.no))
        if self.training:
            return raw
        out = torch.cat(decoded, 1)
        return (out,) if self.export else (out, raw)

    def decode(self, i: int, p: torch.Tensor) -> torch.Tensor:
        """YOLOv5 v6+ decode: xy = (2 sig - 0.5 + cell) * stride, wh = (2 sig)^2 * anchor."""
        _, _, ny, nx, _ = p.shape
        grid, anchor_grid = self.make_grid(i, nx, ny, p)
        xy, wh, conf = p.sigmoid().split((2, 2, self.nc + 1), 4)
        xy = (xy * 2 + grid) * self.stride[i]
        wh = (wh * 2) ** 2 * anchor_grid
        return torch.cat((xy, wh, conf), 4)

    def box_from_raw(self, pxy: torch.Tensor, pwh: torch.Tensor, anchors: torch.Tensor, level: int = 0
                     ) -> torch.Tensor:
        """Training boxes (n, 4) xywh in grid units from raw logits: xy = 2 sig - 0.5 (cell-relative), wh = (2 sig)^2 * anchor."""
        return torch.cat((pxy.sigmoid() * 2 - 0.5, (pwh.sigmoid() * 2) ** 2 * anchors), 1)

    def make_grid(self, i: int, nx: int, ny: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell offsets (1, na, ny, nx, 2), shifted by -0.5, and anchors in pixels broadcast to the grid."""
        y = torch.arange(ny, device=like.device, dtype=like.dtype)
        x = torch.arange(nx, device=like.device, dtype=like.dtype)
        yv, xv = torch.meshgrid(y, x, indexing="ij")
        grid = torch.stack((xv, yv), 2).expand(1, self.na, ny, nx, 2) - 0.5
        anchor_grid = (self.anchors[i] * self.stride[i]).view(1, self.na, 1, 1, 2).to(like.dtype)
        return grid, anchor_grid

    def output_convs(self, layers: nn.Sequential) -> list[nn.Module | None]:
        """The conv that produces each level's raw map: here the head's own (`layers`, the model's rows, is unused)."""
        return list(self.m)

    def initialize_biases(self, class_freq: torch.Tensor | None = None,
                          convs: Sequence[nn.Module | None] | None = None) -> None:
        """Objectness prior of 8 objects per 640x640 image, class prior 0.6/nc (or from class frequencies).

        `convs` (default: the head's own) gives each level's output conv; levels without a biased conv are left."""
        for conv, s in zip(self.m if convs is None else convs, self.stride.tolist()):
            if getattr(conv, "bias", None) is None:
                continue
            b = conv.bias.detach().view(self.na, -1)
            b[:, 4] += math.log(8 / (640 / s) ** 2)
            if class_freq is None:
                b[:, 5:5 + self.nc] += math.log(0.6 / (self.nc - 0.99999))
            else:
                b[:, 5:5 + self.nc] += torch.log(class_freq / class_freq.sum())

    def check_anchor_order(self) -> bool:
        """Flip the anchor levels when their pixel-size order disagrees with the stride order; True if flipped."""
        area = (self.anchors * self.stride.view(-1, 1, 1)).prod(-1).mean(-1).view(-1)
        da, ds = area[-1] - area[0], self.stride[-1] - self.stride[0]
        if da and (da.sign() != ds.sign()):
            self.anchors[:] = self.anchors.flip(0)
            return True
        return False
