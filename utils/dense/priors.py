"""Prior generators with mmdetection's semantics: anchors (AnchorGenerator) and points (MlvlPointGenerator).

Order of the priors of one level: y (rows) outer, x inner, then anchor, so index = (y*W + x)*A + a;
the levels are concatenated stride-first by the heads. Anchor centres sit at (x*stride, y*stride) plus
`center_offset*base_size`; points sit at ((x + offset)*stride, (y + offset)*stride).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

Size = Sequence[int]


def _pairs(strides: Sequence) -> list[tuple[int, int]]:
    """Each stride as (stride_w, stride_h); an int means a square stride."""
    out = []
    for s in strides:
        if isinstance(s, (list, tuple)):
            if len(s) != 2:
                raise ValueError(f"a stride is an int or [w, h], got {list(s)}")
            out.append((s[0], s[1]))
        else:
            out.append((s, s))
    for sw, sh in out:
        if sw <= 0 or sh <= 0:
            raise ValueError(f"strides must be positive, got {[list(p) for p in out]}")
    return out


def _meshgrid(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened grid with y outer and x inner."""
    xx = x.repeat(len(y))
    yy = y.view(-1, 1).repeat(1, len(x)).view(-1)
    return xx, yy


class AnchorGenerator:
    """mmdet AnchorGenerator: base anchors per level from base size, scales and ratios (ratio = h / w)."""

    def __init__(self, strides: list, ratios: list[float] = (1.0,), scales: list[float] | None = None,
                 base_sizes: list[int] | None = None, scale_major: bool = True,
                 octave_base_scale: float | None = None, scales_per_octave: int | None = None,
                 centers: list[list[float]] | None = None, center_offset: float = 0.0):
        self.strides = _pairs(strides)
        if centers is not None and center_offset != 0:
            raise ValueError("give either centers or center_offset, not both")
        if not 0 <= center_offset <= 1:
            raise ValueError(f"center_offset must be in [0, 1], got {center_offset}")
        if centers is not None and len(centers) != len(self.strides):
            raise ValueError(f"{len(centers)} centers for {len(self.strides)} strides")
        self.base_sizes = [min(p) for p in self.strides] if base_sizes is None else list(base_sizes)
        if len(self.base_sizes) != len(self.strides):
            raise ValueError(f"{len(self.base_sizes)} base_sizes for {len(self.strides)} strides")
        if (scales is None) == (octave_base_scale is None or scales_per_octave is None):
            raise ValueError("give either scales or both octave_base_scale and scales_per_octave")
        if scales is None:
            if int(scales_per_octave) != scales_per_octave or scales_per_octave < 1:
                raise ValueError(f"scales_per_octave must be a positive int, got {scales_per_octave}")
            scales = [octave_base_scale * 2 ** (i / scales_per_octave) for i in range(int(scales_per_octave))]
        if not len(ratios) or any(r <= 0 for r in ratios) or any(s <= 0 for s in scales):
            raise ValueError(f"ratios and scales must be non-empty and positive, got {list(ratios)}, {list(scales)}")
        self.octave_base_scale, self.scales_per_octave = octave_base_scale, scales_per_octave
        self.scales = torch.tensor([float(s) for s in scales])
        self.ratios = torch.tensor([float(r) for r in ratios])
        self.scale_major = scale_major
        self.centers = centers
        self.center_offset = center_offset
        self.base_anchors = [self._base_anchors(i) for i in range(len(self.strides))]

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def num_base_priors(self) -> list[int]:
        """Anchors per location, per level."""
        return [len(b) for b in self.base_anchors]

    def _base_anchors(self, level: int) -> torch.Tensor:
        size = self.base_sizes[level]
        if self.centers is None:
            cx = cy = self.center_offset * size
        else:
            cx, cy = self.centers[level]
        h_ratios = torch.sqrt(self.ratios)
        w_ratios = 1 / h_ratios
        if self.scale_major:
            ws = (size * w_ratios[:, None] * self.scales[None, :]).view(-1)
            hs = (size * h_ratios[:, None] * self.scales[None, :]).view(-1)
        else:
            ws = (size * self.scales[:, None] * w_ratios[None, :]).view(-1)
            hs = (size * self.scales[:, None] * h_ratios[None, :]).view(-1)
        return torch.stack([cx - 0.5 * ws, cy - 0.5 * hs, cx + 0.5 * ws, cy + 0.5 * hs], dim=-1)

    def single_level_grid_priors(self, featmap_size: Size, level: int, dtype: torch.dtype = torch.float32,
                                 device: torch.device | str = "cpu") -> torch.Tensor:
        """(H*W*A, 4) xyxy anchors of one level."""
        base = self.base_anchors[level].to(device=device, dtype=dtype)
        feat_h, feat_w = featmap_size
        stride_w, stride_h = self.strides[level]
        shift_x = torch.arange(0, feat_w, device=device).to(dtype) * stride_w
        shift_y = torch.arange(0, feat_h, device=device).to(dtype) * stride_h
        xx, yy = _meshgrid(shift_x, shift_y)
        shifts = torch.stack([xx, yy, xx, yy], dim=-1)
        return (base[None, :, :] + shifts[:, None, :]).view(-1, 4)

    def grid_priors(self, featmap_sizes: Sequence[Size], dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """Anchors of every level, a list of (H*W*A, 4)."""
        if len(featmap_sizes) != self.num_levels:
            raise ValueError(f"{len(featmap_sizes)} feature maps for {self.num_levels} anchor levels")
        return [self.single_level_grid_priors(s, i, dtype, device) for i, s in enumerate(featmap_sizes)]

    def valid_flags(self, featmap_sizes: Sequence[Size], pad_shape: Size,
                    device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """Per level (H*W*A,) bool: the anchor's cell lies inside the padded image."""
        flags = []
        for level, (feat_h, feat_w) in enumerate(featmap_sizes):
            stride_w, stride_h = self.strides[level]
            valid_h = min(int(math.ceil(pad_shape[0] / stride_h)), feat_h)
            valid_w = min(int(math.ceil(pad_shape[1] / stride_w)), feat_w)
            vx = torch.zeros(feat_w, dtype=torch.bool, device=device)
            vy = torch.zeros(feat_h, dtype=torch.bool, device=device)
            vx[:valid_w], vy[:valid_h] = True, True
            xx, yy = _meshgrid(vx, vy)
            valid = xx & yy
            flags.append(valid[:, None].expand(valid.size(0), self.num_base_priors[level]).contiguous().view(-1))
        return flags


class MlvlPointGenerator:
    """mmdet MlvlPointGenerator: one point per cell at ((x + offset)*stride, (y + offset)*stride)."""

    def __init__(self, strides: list, offset: float = 0.5):
        self.strides = _pairs(strides)
        if not 0 <= offset <= 1:
            raise ValueError(f"offset must be in [0, 1], got {offset}")
        self.offset = offset

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def num_base_priors(self) -> list[int]:
        return [1] * len(self.strides)

    def single_level_grid_priors(self, featmap_size: Size, level: int, dtype: torch.dtype = torch.float32,
                                 device: torch.device | str = "cpu", with_stride: bool = False) -> torch.Tensor:
        """(H*W, 2) points (x, y), or (H*W, 4) (x, y, stride_w, stride_h) with_stride."""
        feat_h, feat_w = featmap_size
        stride_w, stride_h = self.strides[level]
        shift_x = ((torch.arange(0, feat_w, device=device) + self.offset) * stride_w).to(dtype)
        shift_y = ((torch.arange(0, feat_h, device=device) + self.offset) * stride_h).to(dtype)
        xx, yy = _meshgrid(shift_x, shift_y)
        if not with_stride:
            return torch.stack([xx, yy], dim=-1)
        sw = xx.new_full((xx.shape[0],), stride_w).to(dtype)
        sh = xx.new_full((xx.shape[0],), stride_h).to(dtype)
        return torch.stack([xx, yy, sw, sh], dim=-1)

    def grid_priors(self, featmap_sizes: Sequence[Size], dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu", with_stride: bool = False) -> list[torch.Tensor]:
        """Points of every level."""
        if len(featmap_sizes) != self.num_levels:
            raise ValueError(f"{len(featmap_sizes)} feature maps for {self.num_levels} point levels")
        return [self.single_level_grid_priors(s, i, dtype, device, with_stride) for i, s in enumerate(featmap_sizes)]
