"""Building blocks of the YAML model graph (YOLOv5 layouts plus ConvNeXt pieces).

Every block that contains convolutions takes an `act` argument (see `make_act`) and passes it down,
so a model's activation comes from its YAML without touching any class-level or global state.
The YAML contract of each block (how a row's args map to constructor args and output channels)
is declared by its `@register` decorator (see `models/registry.py`).
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Sequence, Union

import torch
import torch.nn as nn

from models.registry import register, register_torch_modules

ActSpec = Union[bool, None, nn.Module, Callable[[], nn.Module]]


def make_act(act: ActSpec) -> nn.Module:
    """A fresh activation module: True -> SiLU, False/None -> Identity, a factory is called, a module copied."""
    if act is True:
        return nn.SiLU()
    if act is False or act is None:
        return nn.Identity()
    if isinstance(act, nn.Module):
        return copy.deepcopy(act)
    return act()


def autopad(k: int | Sequence[int], p: int | Sequence[int] | None = None, d: int = 1):
    """'Same' padding for kernel k and dilation d when p is None."""
    if d > 1:
        k = d * (k - 1) + 1 if isinstance(k, int) else [d * (x - 1) + 1 for x in k]
    if p is None:
        p = k // 2 if isinstance(k, int) else [x // 2 for x in k]
    return p


@register(layout="conv")
class Conv(nn.Module):
    """Conv2d + BatchNorm2d + activation (BN folded into the conv, and removed, by `fuse`)."""

    # YOLOv5 v7.0 gives all its Convs one shared default-activation module, so its "N layers" figure counts
    # that activation once; Model.layer_count reproduces the figure (each Conv here owns its activation).
    shares_default_act = True

    def __init__(self, c1: int, c2: int, k=1, s=1, p=None, g: int = 1, d: int = 1, act: ActSpec = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g, dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.act(x if self.bn is None else self.bn(x))

    def fuse(self) -> None:
        """Fold the batch norm into the convolution and drop it (inference only)."""
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = fuse_conv_and_bn(self.conv, self.bn)
            self.bn = None


@register(layout="conv")
class DWConv(Conv):
    """Depth-wise convolution (groups = gcd(c1, c2))."""

    def __init__(self, c1: int, c2: int, k=1, s=1, d: int = 1, act: ActSpec = True):
        super().__init__(c1, c2, k, s, g=math.gcd(c1, c2), d=d, act=act)


@register(layout="conv")
class Focus(nn.Module):
    """Space-to-depth (each 2x2 pixel block to channels) then a Conv: the early YOLOv5 stem."""

    def __init__(self, c1: int, c2: int, k=1, s=1, p=None, g: int = 1, act: ActSpec = True):
        super().__init__()
        self.conv = Conv(c1 * 4, c2, k, s, p, g, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1))


@register(layout="conv")
class Bottleneck(nn.Module):
    """k[0] then k[1] conv (YOLOv5: 1x1 then 3x3; YOLOv8 blocks pass (3, 3)) with a residual when shapes allow."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, g: int = 1, e: float = 0.5, act: ActSpec = True,
                 k: Sequence[int] = (1, 3)):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, k[0], 1, act=act)
        self.cv2 = Conv(c_, c2, k[1], 1, g=g, act=act)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


@register(layout="csp")
class BottleneckCSP(nn.Module):
    """Cross Stage Partial bottleneck of the early YOLOv5 layouts (github.com/WongKinYiu/CrossStagePartialNetworks)."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5,
                 act: ActSpec = True):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1, act=act)
        self.cv2 = nn.Conv2d(c1, c_, 1, 1, bias=False)
        self.cv3 = nn.Conv2d(c_, c_, 1, 1, bias=False)
        self.cv4 = Conv(2 * c_, c2, 1, 1, act=act)
        self.bn = nn.BatchNorm2d(2 * c_)
        self.act = make_act(act)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, e=1.0, act=act) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y1 = self.cv3(self.m(self.cv1(x)))
        y2 = self.cv2(x)
        return self.cv4(self.act(self.bn(torch.cat((y1, y2), 1))))


@register(layout="csp")
class C3(nn.Module):
    """CSP bottleneck with three convolutions (YOLOv5 v4+)."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5,
                 act: ActSpec = True):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1, act=act)
        self.cv2 = Conv(c1, c_, 1, 1, act=act)
        self.cv3 = Conv(2 * c_, c2, 1, act=act)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, e=1.0, act=act) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


@register(layout="conv")
class SPP(nn.Module):
    """Spatial pyramid pooling: parallel max-pools of several sizes, concatenated (YOLOv3-SPP)."""

    def __init__(self, c1: int, c2: int, k: Sequence[int] = (5, 9, 13), act: ActSpec = True):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1, act=act)
        self.cv2 = Conv(c_ * (len(k) + 1), c2, 1, 1, act=act)
        self.m = nn.ModuleList(nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [m(x) for m in self.m], 1))


@register(layout="conv")
class SPPF(nn.Module):
    """Fast SPP: three chained k-pools equal SPP(k, 2k-1, 3k-2) at lower cost."""

    def __init__(self, c1: int, c2: int, k: int = 5, act: ActSpec = True):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1, act=act)
        self.cv2 = Conv(c_ * 4, c2, 1, 1, act=act)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


@register(layout="concat")
class Concat(nn.Module):
    """Concatenate a list of tensors along a dimension."""

    def __init__(self, dimension: int = 1):
        super().__init__()
        self.d = dimension

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(x, self.d)


def fuse_conv_and_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A Conv2d with bias equal to conv followed by bn (eval statistics)."""
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      dilation=conv.dilation, groups=conv.groups, bias=True).requires_grad_(False)
    fused = fused.to(conv.weight.device)
    w_conv = conv.weight.detach().view(conv.out_channels, -1)
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    fused.weight.copy_((w_conv * scale[:, None]).view(fused.weight.shape))
    b_conv = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels, device=conv.weight.device)
    b_bn = bn.bias.detach() - bn.weight.detach() * bn.running_mean / torch.sqrt(bn.running_var + bn.eps)
    fused.bias.copy_(scale * b_conv + b_bn)
    return fused


register_torch_modules()
