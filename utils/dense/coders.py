"""Box coders with mmdetection's semantics: DeltaXYWHBBoxCoder (anchor deltas) and DistancePointBBoxCoder."""
from __future__ import annotations

import math
from typing import Sequence

import torch


class DeltaXYWHBBoxCoder:
    """(dx, dy, dw, dh) = ((gx-px)/pw, (gy-py)/ph, log(gw/pw), log(gh/ph)), normalised by target_means/stds."""

    encode_size = 4

    def __init__(self, target_means: list[float] = (0.0, 0.0, 0.0, 0.0),
                 target_stds: list[float] = (1.0, 1.0, 1.0, 1.0), clip_border: bool = True,
                 add_ctr_clamp: bool = False, ctr_clamp: float = 32):
        if len(target_means) != 4 or len(target_stds) != 4:
            raise ValueError(f"target_means and target_stds need 4 values, got {list(target_means)}, "
                             f"{list(target_stds)}")
        if any(s <= 0 for s in target_stds):
            raise ValueError(f"target_stds must be positive, got {list(target_stds)}")
        self.means = [float(m) for m in target_means]
        self.stds = [float(s) for s in target_stds]
        self.clip_border = clip_border
        self.add_ctr_clamp = add_ctr_clamp
        self.ctr_clamp = ctr_clamp

    def encode(self, priors: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """Deltas (n, 4) that turn xyxy priors (n, 4) into xyxy gt boxes (n, 4)."""
        if priors.shape[0] != gt.shape[0]:
            raise ValueError(f"{priors.shape[0]} priors but {gt.shape[0]} gt boxes")
        priors, gt = priors.float(), gt.float()
        px, py = (priors[..., 0] + priors[..., 2]) * 0.5, (priors[..., 1] + priors[..., 3]) * 0.5
        pw, ph = priors[..., 2] - priors[..., 0], priors[..., 3] - priors[..., 1]
        gx, gy = (gt[..., 0] + gt[..., 2]) * 0.5, (gt[..., 1] + gt[..., 3]) * 0.5
        gw, gh = gt[..., 2] - gt[..., 0], gt[..., 3] - gt[..., 1]
        deltas = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=-1)
        return (deltas - deltas.new_tensor(self.means)) / deltas.new_tensor(self.stds)

    def decode(self, priors: torch.Tensor, deltas: torch.Tensor, max_shape: Sequence[int] | None = None,
               wh_ratio_clip: float = 16 / 1000) -> torch.Tensor:
        """xyxy boxes (n, 4k) from priors (n, 4) and deltas (n, 4k); clipped to max_shape (h, w) if clip_border."""
        n, k = deltas.size(0), deltas.size(1) // 4
        if n == 0:
            return deltas
        d = deltas.reshape(-1, 4) * deltas.new_tensor(self.stds).view(1, -1) + deltas.new_tensor(self.means).view(1, -1)
        dxy, dwh = d[:, :2], d[:, 2:]
        rois = priors.repeat(1, k).reshape(-1, 4)
        pxy = (rois[:, :2] + rois[:, 2:]) * 0.5
        pwh = rois[:, 2:] - rois[:, :2]
        dxy_wh = pwh * dxy
        max_ratio = abs(math.log(wh_ratio_clip))
        if self.add_ctr_clamp:
            dxy_wh = torch.clamp(dxy_wh, max=self.ctr_clamp, min=-self.ctr_clamp)
            dwh = torch.clamp(dwh, max=max_ratio)
        else:
            dwh = dwh.clamp(min=-max_ratio, max=max_ratio)
        gxy = pxy + dxy_wh
        gwh = pwh * dwh.exp()
        boxes = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
        if self.clip_border and max_shape is not None:
            boxes = _clip(boxes, max_shape)
        return boxes.reshape(n, -1)


class DistancePointBBoxCoder:
    """(l, t, r, b) distances from a point to the sides of a box."""

    encode_size = 4

    def __init__(self, clip_border: bool = True):
        self.clip_border = clip_border

    def encode(self, points: torch.Tensor, gt: torch.Tensor, max_dis: float | None = None,
               eps: float = 0.1) -> torch.Tensor:
        """Distances (n, 4) from points (n, 2) to xyxy gt (n, 4); clamped to [0, max_dis - eps] with max_dis."""
        if points.size(0) != gt.size(0) or points.size(-1) != 2 or gt.size(-1) != 4:
            raise ValueError(f"encode needs points (n, 2) and boxes (n, 4), got {tuple(points.shape)}, "
                             f"{tuple(gt.shape)}")
        d = torch.stack([points[..., 0] - gt[..., 0], points[..., 1] - gt[..., 1],
                         gt[..., 2] - points[..., 0], gt[..., 3] - points[..., 1]], -1)
        if max_dis is not None:
            d = d.clamp(min=0, max=max_dis - eps)
        return d

    def decode(self, points: torch.Tensor, distances: torch.Tensor,
               max_shape: Sequence[int] | None = None) -> torch.Tensor:
        """xyxy boxes from points (n, 2) and distances (n, 4); clipped to max_shape (h, w) if clip_border."""
        if points.size(0) != distances.size(0) or points.size(-1) != 2 or distances.size(-1) != 4:
            raise ValueError(f"decode needs points (n, 2) and distances (n, 4), got {tuple(points.shape)}, "
                             f"{tuple(distances.shape)}")
        boxes = torch.stack([points[..., 0] - distances[..., 0], points[..., 1] - distances[..., 1],
                             points[..., 0] + distances[..., 2], points[..., 1] + distances[..., 3]], -1)
        if self.clip_border and max_shape is not None:
            boxes = _clip(boxes, max_shape)
        return boxes


def _clip(boxes: torch.Tensor, max_shape: Sequence[int]) -> torch.Tensor:
    """Clamp x to [0, w] and y to [0, h] (max_shape is (h, w))."""
    x = boxes[..., 0::2].clamp(min=0, max=max_shape[1])
    y = boxes[..., 1::2].clamp(min=0, max=max_shape[0])
    return torch.stack([x, y], dim=-1).flatten(-2)
