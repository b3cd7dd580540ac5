"""Darknet building blocks, registered for YAML rows: one row per Darknet cfg section (see models/darknet_cfg.py).

The rows keep Darknet's layer numbering: layer i of the cfg (after [net]) is row i of the YAML, [yolo]
sections become `nn.Identity` rows and a final `DarknetDetect` row reads them. Darknet's numerics are
kept: batch-norm eps 1e-5, leaky slope 0.1, max-pools padded right/bottom with size-1 pixels in total,
route channel groups, and the yolo-layer decode (sigmoid xy with scale_x_y, exp(wh) x anchor).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.common import Conv
from models.detect import Detect
from models.registry import Layout, Row, register
from models.rows import input_rows

DARKNET_BN_EPS = 1e-5

ACTIVATIONS = {"leaky": lambda: nn.LeakyReLU(0.1), "mish": nn.Mish, "linear": nn.Identity, "logistic": nn.Sigmoid,
               "swish": nn.SiLU, "silu": nn.SiLU, "relu": nn.ReLU}


def darknet_act(name: str) -> nn.Module:
    """A fresh module for a Darknet activation name (leaky = LeakyReLU(0.1))."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown Darknet activation '{name}'; supported: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class DarknetBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d with Darknet's fixed eps 1e-5 (YOLOv5's weight init sets every BN eps to 1e-3; not this one)."""

    @property
    def eps(self) -> float:
        return DARKNET_BN_EPS

    @eps.setter
    def eps(self, value: float) -> None:  # the value is fixed by Darknet's arithmetic: assignments are ignored
        pass


def darknet_conv_layout(row: Row) -> Layout:
    """[filters, size, stride, padding, groups, batch_normalize, activation] -> DarknetConv(c1, ...); no width scaling."""
    if len(row.args) != 7:
        raise ValueError(f"DarknetConv takes [filters, size, stride, padding, groups, bn, activation], got {row.args}")
    filters, _, _, _, groups = row.args[:5]
    if row.c_in[0] % groups or filters % groups:
        raise ValueError(f"groups={groups} must divide the input channels {row.c_in[0]} and filters {filters}")
    return Layout([row.c_in[0], *row.args], filters)


@register(layout=darknet_conv_layout)
class DarknetConv(Conv):
    """Darknet [convolutional]: Conv2d (+ BatchNorm, eps 1e-5) + activation; conv bias only without BN."""

    shares_default_act = False  # each Darknet layer names its own activation

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int = 0, g: int = 1, bn: bool = True,
                 activation: str = "leaky"):
        nn.Module.__init__(self)  # Conv's own layers (bias-free conv, YOLOv5 BN) do not fit: build ours
        self.conv = nn.Conv2d(c1, c2, k, s, p, groups=g, bias=not bn)
        self.bn = DarknetBatchNorm2d(c2) if bn else nn.Identity()
        self.act = darknet_act(activation)
        self.activation = activation


@register(layout="same")
class DarknetMaxPool(nn.Module):
    """Darknet [maxpool]: `padding` (default size-1) pixels in total, padding//2 on the left/top, the rest right/bottom.

    With size 2, stride 1 this is yolov3-tiny's shape-keeping pool that pads right and bottom only.
    """

    def __init__(self, k: int = 2, s: int = 2, padding: int | None = None):
        super().__init__()
        self.k, self.s = k, s
        total = k - 1 if padding is None else padding
        self.pad = (total // 2, total - total // 2) * 2  # left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.pad, value=float("-inf"))
        return F.max_pool2d(x, self.k, self.s)


def route_layout(row: Row) -> Layout:
    """[groups, group_id]: every input contributes channel slice group_id of `groups` equal slices."""
    groups, group_id = row.args
    if not 0 <= group_id < groups:
        raise ValueError(f"group_id={group_id} must be in 0..{groups - 1}")
    for c in row.c_in:
        if c % groups:
            raise ValueError(f"groups={groups} does not divide an input's {c} channels")
    return Layout([groups, group_id], sum(c // groups for c in row.c_in))


@register(layout=route_layout)
class DarknetRoute(nn.Module):
    """Darknet [route]: concatenate the listed layers in order, each cut to its channel group `group_id`."""

    def __init__(self, groups: int = 1, group_id: int = 0):
        super().__init__()
        self.groups, self.group_id = groups, group_id

    def forward(self, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        xs = x if isinstance(x, list) else [x]
        if self.groups > 1:
            xs = [t.chunk(self.groups, 1)[self.group_id] for t in xs]
        return xs[0] if len(xs) == 1 else torch.cat(xs, 1)


def pair_layout(row: Row) -> Layout:
    """[activation] for two inputs: output shaped like the first."""
    if len(row.c_in) != 2:
        raise ValueError(f"needs exactly two inputs ([-1, from]), got {len(row.c_in)}")
    return Layout(list(row.args), row.c_in[0])


@register(layout=pair_layout)
class DarknetShortcut(nn.Module):
    """Darknet [shortcut]: activation(x[-1] + x[from]); both inputs must have the same shape."""

    def __init__(self, activation: str = "linear"):
        super().__init__()
        self.act = darknet_act(activation)

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return self.act(x[0] + x[1])


@register(layout=pair_layout)
class DarknetSam(nn.Module):
    """Darknet [sam]: activation(x[-1] * x[from]) element-wise (spatial attention)."""

    def __init__(self, activation: str = "linear"):
        super().__init__()
        self.act = darknet_act(activation)

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return self.act(x[0] * x[1])


def scale_channels_layout(row: Row) -> Layout:
    """[activation] for [-1 (C x 1 x 1 scales), from (C x H x W map)]: output shaped like `from`."""
    if len(row.c_in) != 2 or row.c_in[0] != row.c_in[1]:
        raise ValueError(f"needs two inputs with equal channels ([-1, from]), got channels {row.c_in}")
    return Layout(list(row.args), row.c_in[1])


@register(layout=scale_channels_layout)
class DarknetScaleChannels(nn.Module):
    """Darknet [scale_channels]: activation(x[from] * x[-1]) with x[-1] one scale per channel."""

    def __init__(self, activation: str = "linear"):
        super().__init__()
        self.act = darknet_act(activation)

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return self.act(x[1] * x[0])


def darknet_detect_layout(row: Row) -> Layout:
    """[nc, anchors (pixels, per level), scale_x_y per level, new_coords per level] -> DarknetDetect."""
    if len(row.args) != 4:
        raise ValueError(f"DarknetDetect takes [nc, anchors, scale_x_y, new_coords], got {row.args}")
    nc, anchors, scale_x_y, new_coords = row.args
    if not (len(anchors) == len(row.c_in) == len(scale_x_y) == len(new_coords)):
        raise ValueError(f"{len(row.c_in)} inputs but {len(anchors)} anchor levels, {len(scale_x_y)} scale_x_y, "
                         f"{len(new_coords)} new_coords")
    for c, a in zip(row.c_in, anchors):
        if c != len(a) // 2 * (nc + 5):
            raise ValueError(f"an input has {c} channels but {len(a) // 2} anchors x (5 + {nc} classes) "
                             f"= {len(a) // 2 * (nc + 5)} are needed")
    return Layout([nc, anchors, list(row.c_in), list(scale_x_y), list(new_coords)], 0)


@register(layout=darknet_detect_layout)
class DarknetDetect(Detect):
    """Darknet's [yolo] layers as one head: no convs of its own, it reads the cfg's last convs.

    Inputs are (B, na * (5 + nc), H, W) in Darknet's channel order (anchor-major, then x, y, w, h, obj,
    classes), exactly YOLOv5's. Decode: xy = (sigmoid * s - (s - 1) / 2 + cell) * stride, wh = exp(t) *
    anchor; with new_coords (the conv already applied a logistic) xy = (t * s - (s - 1) / 2 + cell) * stride,
    wh = 4 t^2 * anchor and no sigmoid on the scores.
    """

    def __init__(self, nc: int = 80, anchors: Sequence[Sequence[float]] = (), ch: Sequence[int] = (),
                 scale_x_y: Sequence[float] = (), new_coords: Sequence[int] = ()):
        super().__init__(nc, anchors, ())
        self.m = nn.ModuleList(nn.Identity() for _ in ch)
        self.scale_x_y = [float(s) for s in (scale_x_y or [1.0] * self.nl)]
        self.new_coords = [int(v) for v in (new_coords or [0] * self.nl)]

    def activate(self, i: int, p: torch.Tensor) -> torch.Tensor:
        """Darknet's yolo-layer output of level i from raw (B, na, H, W, no): xy scaled, scores activated, wh raw."""
        s = self.scale_x_y[i]
        if self.new_coords[i]:
            return torch.cat((p[..., :2] * s - 0.5 * (s - 1), p[..., 2:]), -1)
        return torch.cat((p[..., :2].sigmoid() * s - 0.5 * (s - 1), p[..., 2:4], p[..., 4:].sigmoid()), -1)

    def decode(self, i: int, p: torch.Tensor) -> torch.Tensor:
        """[cx, cy, w, h] in input pixels, objectness and class probabilities, Darknet's way."""
        _, _, ny, nx, _ = p.shape
        grid, anchor_grid = self.make_grid(i, nx, ny, p)
        a = self.activate(i, p)
        xy = (a[..., :2] + grid + 0.5) * self.stride[i]  # make_grid's offsets are shifted by -0.5
        t = a[..., 2:4]
        wh = (4 * t * t if self.new_coords[i] else t.exp()) * anchor_grid
        return torch.cat((xy, wh, a[..., 4:]), -1)

    def box_from_raw(self, pxy: torch.Tensor, pwh: torch.Tensor, anchors: torch.Tensor, level: int = 0
                     ) -> torch.Tensor:
        """Training boxes (n, 4) xywh in grid units, cell-relative xy, with this head's own parametrisation."""
        s = self.scale_x_y[level]
        if self.new_coords[level]:
            return torch.cat((pxy * s - 0.5 * (s - 1), 4 * pwh * pwh * anchors), 1)
        wh = pwh.exp().clamp(max=1e3) * anchors  # the clamp only keeps early training finite
        return torch.cat((pxy.sigmoid() * s - 0.5 * (s - 1), wh), 1)

    def score_logits(self, p: torch.Tensor, level: int) -> torch.Tensor:
        """Raw output of a level with objectness and class scores as logits (for the loss's BCE-with-logits).

        With new_coords the conv's logistic already made them probabilities: their logit (clamped away from 0
        and 1) is the conv's pre-activation, so the loss sees what it would see without the logistic."""
        if not self.new_coords[level]:
            return p
        eps = torch.finfo(p.dtype).eps
        return torch.cat((p[..., :4], torch.logit(p[..., 4:], eps)), -1)

    def output_convs(self, layers: nn.Sequential) -> list[nn.Module | None]:
        """Each level's conv in the model's rows: the row feeding its [yolo] row, when that is a linear DarknetConv.

        None for a level with new_coords (its conv ends in a logistic, which a log-prior bias does not fit).
        Model gives these the YOLOv5 bias prior at construction: a .weights file or checkpoint overwrites it, a
        head resized for a new nc keeps it."""
        convs = []
        for j, new_coords in zip(input_rows(self), self.new_coords):
            src = input_rows(layers[j])  # a [yolo] row reads one row
            conv = layers[src[0]].conv if len(src) == 1 and isinstance(layers[src[0]], DarknetConv) else None
            convs.append(None if new_coords else conv)
        return convs

    def check_anchor_order(self) -> bool:
        """Never reorder: the cfg's masks say which anchors each level uses."""
        return False
