"""Building blocks of the anchor-free YOLOv8 / YOLO11 family (ultralytics 8 layouts).

Each block keeps the attribute names and creation order of the original, so state_dict keys (and therefore
checkpoints written by ultralytics 8) line up one to one. YAML contracts: C2f, C3k2, C3k and C2PSA are
"csp" rows (`[c2, *rest] -> Cls(c1, c2, n, *rest)`); C3k2 also follows the original's rule that the m/l/x
scales always use C3k inner blocks (see `c3k2_layout`); PSABlock and Attention keep their channels.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from models.common import C3, ActSpec, Bottleneck, Conv
from models.registry import Layout, Row, csp_layout, register


@register(layout="csp")
class C2f(nn.Module):
    """CSP bottleneck with two convolutions: cv1 splits into two halves, n bottlenecks chain on the second,
    cv2 fuses every intermediate map (YOLOv8)."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5,
                 act: ActSpec = True):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1, act=act)
        self.cv2 = Conv((2 + n) * self.c, c2, 1, act=act)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut, g, e=1.0, k=(3, 3), act=act) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        halves = self.cv1(x).chunk(2, 1)
        y = [halves[0], halves[1]]  # indexed, not unpacked: torch.fx traces it (utils/analysis/receptive_field.py)
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


@register(layout="csp")
class C3k(C3):
    """C3 whose bottlenecks use a k x k kernel pair (YOLO11's inner block of C3k2)."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5,
                 k: int = 3, act: ActSpec = True):
        super().__init__(c1, c2, n, shortcut, g, e, act=act)
        c_ = int(c2 * e)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, e=1.0, k=(k, k), act=act) for _ in range(n)))


BIG_SCALES = "mlx"  # the original turns c3k on for these scales whatever the row says


def c3k2_layout(row: Row) -> Layout:
    """[c2, c3k, e, ...] -> C3k2(c1, c2, n, c3k, e, ...); at scale m, l or x c3k is True (as the original)."""
    layout = csp_layout(row)
    if row.model_scale and row.model_scale in BIG_SCALES:
        args = layout.args + [False] * max(0, 4 - len(layout.args))
        args[3] = True
        layout.args = args
    return layout


@register(layout=c3k2_layout)
class C3k2(C2f):
    """C2f with a switch: `c3k=True` uses C3k inner blocks (two 3x3 bottlenecks each), else plain bottlenecks."""

    def __init__(self, c1: int, c2: int, n: int = 1, c3k: bool = False, e: float = 0.5, g: int = 1,
                 shortcut: bool = True, act: ActSpec = True):
        super().__init__(c1, c2, n, shortcut, g, e, act=act)
        self.m = nn.ModuleList(
            C3k(self.c, self.c, 2, shortcut, g, act=act) if c3k else Bottleneck(self.c, self.c, shortcut, g, k=(3, 3),
                                                                                act=act)
            for _ in range(n))


def same_channels_layout(row: Row) -> Layout:
    """Blocks that keep their input's channels: Cls(c_in, *args)."""
    return Layout([row.c_in[0], *row.args], row.c_in[0], copies=row.n)


@register(layout=same_channels_layout)
class Attention(nn.Module):
    """Multi-head self-attention over all positions, with a depth-wise 3x3 positional term on the values."""

    global_receptive_field = True  # every output position sees the whole input (utils/analysis/receptive_field.py)

    def __init__(self, dim: int, num_heads: int = 8, attn_ratio: float = 0.5):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim ** -0.5
        h = dim + self.key_dim * num_heads * 2
        self.qkv = Conv(dim, h, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False)

    def extra_macs(self, x: torch.Tensor) -> float:
        """Multiply-accumulates of q^T k and v attn^T, which a per-module FLOPs counter does not see."""
        n = x.shape[-2] * x.shape[-1]
        return float(x.shape[0] * self.num_heads * n * n * (self.key_dim + self.head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = h * w
        q, k, v = self.qkv(x).view(b, self.num_heads, self.key_dim * 2 + self.head_dim, n).split(
            [self.key_dim, self.key_dim, self.head_dim], dim=2)
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)
        x = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(x)


@register(layout=same_channels_layout)
class PSABlock(nn.Module):
    """Attention then a 2x feed-forward of 1x1 convs, each with a residual connection (YOLO11)."""

    def __init__(self, c: int, attn_ratio: float = 0.5, num_heads: int = 4, shortcut: bool = True,
                 act: ActSpec = True):
        super().__init__()
        self.attn = Attention(c, attn_ratio=attn_ratio, num_heads=num_heads)
        self.ffn = nn.Sequential(Conv(c, c * 2, 1, act=act), Conv(c * 2, c, 1, act=False))
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x) if self.add else self.attn(x)
        return x + self.ffn(x) if self.add else self.ffn(x)


@register(layout="csp")
class C2PSA(nn.Module):
    """Half the channels go through n PSABlocks (heads = channels // 64), the other half bypass; c1 must equal c2."""

    def __init__(self, c1: int, c2: int, n: int = 1, e: float = 0.5, act: ActSpec = True):
        super().__init__()
        if c1 != c2:
            raise ValueError(f"C2PSA keeps its channels: input {c1} != output {c2}")
        self.c = int(c1 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1, act=act)
        self.cv2 = Conv(2 * self.c, c1, 1, act=act)
        self.m = nn.Sequential(*(PSABlock(self.c, attn_ratio=0.5, num_heads=max(self.c // 64, 1), act=act)
                                 for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv1(x).split((self.c, self.c), dim=1)
        a, b = y[0], y[1]  # indexed: traceable by torch.fx
        return self.cv2(torch.cat((a, self.m(b)), 1))


@register(layout="csp")
class C2(nn.Module):
    """CSP bottleneck with two convolutions: n 3x3 bottlenecks on one half, the other half bypasses (YOLOv8-P6 neck)."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5,
                 act: ActSpec = True):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1, act=act)
        self.cv2 = Conv(2 * self.c, c2, 1, act=act)
        self.m = nn.Sequential(*(Bottleneck(self.c, self.c, shortcut, g, e=1.0, k=(3, 3), act=act) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv1(x).chunk(2, 1)
        a, b = y[0], y[1]  # indexed: traceable by torch.fx
        return self.cv2(torch.cat((self.m(a), b), 1))
