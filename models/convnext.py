"""ConvNeXt pieces (Liu et al. 2022, "A ConvNet for the 2020s") usable as YAML rows.

`ConvNeXt_Block` is one row per stage: it builds that stage's downsample layer (the 4x4 stem for
stage 0, LayerNorm + 2x2 strided conv otherwise) and its `depths[stage]` blocks, nothing more, so a
backbone written as four rows holds exactly one copy of ConvNeXt. Submodule names follow the
official release (`downsample.0/1` <- `downsample_layers.i.0/1`, `stage.j.*` <- `stages.i.j.*`).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.registry import Layout, Row, register


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability p (rescaled)."""
    if p == 0.0 or not training:
        return x
    keep = 1 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Stochastic depth as a module."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an NCHW tensor ("channels_first")."""

    def __init__(self, c: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class ConvNeXtLayer(nn.Module):
    """One ConvNeXt block: 7x7 depth-wise conv, LayerNorm, 4x inverted MLP with GELU, layer scale, DropPath."""

    def __init__(self, dim: int, drop_path: float = 0.0, layer_scale_init: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(dim)) if layer_scale_init > 0 else None
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # NCHW -> NHWC for the LayerNorm and the MLP
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = self.gamma * y
        return x + self.drop_path(y.permute(0, 3, 1, 2))


def convnext_layout(row: Row) -> Layout:
    """[c2, stage, c1, depths, dims, ...]: channels are ConvNeXt's own (not scaled); c1 must match the input."""
    if len(row.args) < 5:
        raise ValueError(f"ConvNeXt_Block needs [out_channels, stage, in_channels, depths, dims], got {row.args}")
    c2, stage, c1 = row.args[:3]
    if c1 != row.c_in[0]:
        raise ValueError(f"channel mismatch: the row says in_channels={c1} but its input has {row.c_in[0]} channels")
    return Layout(list(row.args), c2)


@register(layout=convnext_layout)
class ConvNeXt_Block(nn.Module):  # noqa: N801 (the name ConvNeXt-YOLOv5 YAML files use)
    """Stage `stage` of a ConvNeXt backbone: its downsample layer followed by `depths[stage]` blocks.

    YAML args: [out_channels, stage, in_channels, depths, dims, (drop_path_rate), (layer_scale_init)].
    The drop-path rate grows linearly over all blocks of the whole backbone, as in the original.
    """

    def __init__(self, c2: int, stage: int, c1: int, depths: Sequence[int], dims: Sequence[int],
                 drop_path_rate: float = 0.0, layer_scale_init: float = 1e-6):
        super().__init__()
        if not 0 <= stage < len(depths) or len(depths) != len(dims):
            raise ValueError(f"stage {stage} out of range for depths {list(depths)} / dims {list(dims)}")
        if c2 != dims[stage]:
            raise ValueError(f"out channels {c2} != dims[{stage}] = {dims[stage]}")
        if stage == 0:
            self.downsample = nn.Sequential(nn.Conv2d(c1, dims[0], kernel_size=4, stride=4), LayerNorm2d(dims[0]))
        else:
            if c1 != dims[stage - 1]:
                raise ValueError(f"in channels {c1} != dims[{stage - 1}] = {dims[stage - 1]}")
            self.downsample = nn.Sequential(LayerNorm2d(dims[stage - 1]),
                                            nn.Conv2d(dims[stage - 1], dims[stage], kernel_size=2, stride=2))
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        first = sum(depths[:stage])
        self.stage = nn.Sequential(*(ConvNeXtLayer(dims[stage], rates[first + j], layer_scale_init)
                                     for j in range(depths[stage])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage(self.downsample(x))
