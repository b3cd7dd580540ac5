"""Tensor-only decoding of the dense heads' raw maps for the head contract (traceable for TorchScript / ONNX).

The rules are mmdetection 3.3's (see ../shared/reference/mmdet/README.md, "Conventions"): priors level by level,
y outer, x inner, then anchor; anchors centred at (x * stride, y * stride) with scale-major base anchors; points
at ((x + 0.5) * stride, (y + 0.5) * stride) (FCOS) or (x * stride, y * stride) (YOLOX); boxes x1y1x2y2 pixels.
"""
from __future__ import annotations

import math

import torch


def base_anchors(stride: float, octave_base_scale: float, scales_per_octave: int, ratios: list[float],
                 device=None, dtype=torch.float32) -> torch.Tensor:
    """(A, 4) x1y1x2y2 anchors of one cell centred at 0, anchor index = ratio index * n_scales + scale index."""
    scales = torch.tensor([octave_base_scale * 2 ** (i / scales_per_octave) for i in range(scales_per_octave)],
                          dtype=dtype, device=device)
    h_ratios = torch.tensor(ratios, dtype=dtype, device=device).sqrt()
    w_ratios = 1 / h_ratios
    ws = (stride * w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (stride * h_ratios[:, None] * scales[None, :]).reshape(-1)
    return torch.stack((-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs), -1)


def grid_points(h: int, w: int, stride: float, offset: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """(h * w, 2) [x, y] pixel points of a level, row-major: ((x + offset) * stride, (y + offset) * stride)."""
    ys = (torch.arange(h, device=device, dtype=dtype) + offset) * stride
    xs = (torch.arange(w, device=device, dtype=dtype) + offset) * stride
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((xx.reshape(-1), yy.reshape(-1)), -1)


def grid_anchors(h: int, w: int, stride: float, base: torch.Tensor) -> torch.Tensor:
    """(h * w * A, 4) anchors of a level: index (y * w + x) * A + a."""
    pts = grid_points(h, w, stride, 0.0, base.device, base.dtype)
    return (pts.repeat(1, 2)[:, None, :] + base[None]).reshape(-1, 4)


def delta_decode(anchors: torch.Tensor, deltas: torch.Tensor, means: list[float], stds: list[float],
                 max_hw: tuple, wh_ratio_clip: float = 16 / 1000) -> torch.Tensor:
    """DeltaXYWH decode (dx, dy scaled by the anchor size, dw, dh in log space, clamped), clipped to max_hw (h, w)."""
    d = deltas * deltas.new_tensor(stds) + deltas.new_tensor(means)
    pxy = (anchors[..., :2] + anchors[..., 2:]) / 2
    pwh = anchors[..., 2:] - anchors[..., :2]
    limit = abs(math.log(wh_ratio_clip))
    gxy = pxy + pwh * d[..., :2]
    gwh = pwh * d[..., 2:].clamp(-limit, limit).exp()
    return clip_xyxy(torch.cat((gxy - gwh / 2, gxy + gwh / 2), -1), max_hw)


def distance_decode(points: torch.Tensor, ltrb: torch.Tensor, max_hw: tuple | None) -> torch.Tensor:
    """(left, top, right, bottom) distances from points -> x1y1x2y2, clipped to max_hw (h, w) when given."""
    boxes = torch.cat((points - ltrb[..., :2], points + ltrb[..., 2:]), -1)
    return boxes if max_hw is None else clip_xyxy(boxes, max_hw)


def clip_xyxy(boxes: torch.Tensor, max_hw: tuple) -> torch.Tensor:
    h, w = max_hw
    x = boxes[..., 0::2].clamp(0, w)
    y = boxes[..., 1::2].clamp(0, h)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), -1)


def integral(logits: torch.Tensor, reg_max: int) -> torch.Tensor:
    """(..., 4 * (reg_max + 1)) bin logits, side-major -> (..., 4) expected distances in bins (GFL)."""
    p = logits.reshape(*logits.shape[:-1], 4, reg_max + 1).softmax(-1)
    return p @ torch.arange(reg_max + 1, dtype=p.dtype, device=p.device)


def xyxy2cxcywh(b: torch.Tensor) -> torch.Tensor:
    return torch.cat(((b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]), -1)


def flat(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, A * k, H, W) -> (B, H * W * A, k): mmdet's permute(0, 2, 3, 1).reshape order."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, k)
