"""The FPN neck of mmdetection (Lin et al.) as one YAML row, with the extra P6 / P7 levels RetinaNet and FCOS add.

    [[1, 2, 3], 1, FPN, [256, 5, on_input]]        # C3, C4, C5 -> a list of 5 maps P3..P7, 256 channels each

Args: [out_channels, num_outs (default: the inputs), add_extra_convs, relu_before_extra_convs]:
- 1x1 lateral convs, top-down nearest upsampling to the finer map's size and addition, 3x3 output convs;
- levels beyond the inputs: `False` max-pools the last output (kernel 1, stride 2); `on_input` / `on_lateral` /
  `on_output` start a stride-2 3x3 conv from the last input / lateral / output, the next ones chain from the
  previous extra level (ReLU before them with `relu_before_extra_convs`, as FCOS does).
The row outputs a list of maps; a head row takes it whole (`[-1, 1, RetinaHead, [nc]]`) or `Select` picks one.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.registry import Layout, Row, register

EXTRA = (False, "on_input", "on_lateral", "on_output")


def fpn_layout(row: Row) -> Layout:
    """[c, num_outs, add_extra_convs, relu_before_extra_convs] -> FPN(ch_in, c, ...); outputs [c] * num_outs."""
    if not 1 <= len(row.args) <= 4:
        raise ValueError(f"FPN takes [out_channels, num_outs, add_extra_convs, relu_before_extra_convs], got {row.args}")
    if any(isinstance(c, list) for c in row.c_in):
        raise ValueError("FPN takes separate feature-map rows (e.g. Select rows of a backbone), not a list")
    c = row.scale(row.args[0])
    num_outs = row.args[1] if len(row.args) > 1 else len(row.c_in)
    extra = row.args[2] if len(row.args) > 2 else False
    relu = row.args[3] if len(row.args) > 3 else False
    if not isinstance(num_outs, int) or num_outs < len(row.c_in):
        raise ValueError(f"FPN num_outs must be an int >= its {len(row.c_in)} inputs, got {num_outs!r}")
    if extra not in EXTRA:
        raise ValueError(f"FPN add_extra_convs must be one of {EXTRA}, got {extra!r}")
    return Layout([list(row.c_in), c, num_outs, extra, bool(relu)], [c] * num_outs)


@register(layout=fpn_layout)
class FPN(nn.Module):
    def __init__(self, ch: Sequence[int], c: int, num_outs: int, add_extra_convs: bool | str = False,
                 relu_before_extra_convs: bool = False):
        super().__init__()
        self.num_outs, self.add_extra_convs, self.relu_before = num_outs, add_extra_convs, relu_before_extra_convs
        self.lateral_convs = nn.ModuleList(nn.Conv2d(x, c, 1) for x in ch)
        self.fpn_convs = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in ch)
        n_extra = num_outs - len(ch)
        self.extra_convs = nn.ModuleList()
        if add_extra_convs and n_extra:
            first = ch[-1] if add_extra_convs == "on_input" else c
            self.extra_convs.extend(nn.Conv2d(first if i == 0 else c, c, 3, 2, 1) for i in range(n_extra))
        for m in self.modules():  # mmdet's FPN init: xavier uniform, zero bias
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, x)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[2:],
                                                              mode="nearest")
        outs = [conv(t) for conv, t in zip(self.fpn_convs, laterals)]
        if self.num_outs > len(outs) and not self.add_extra_convs:
            while len(outs) < self.num_outs:
                outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        elif self.num_outs > len(outs):
            src = {"on_input": x[-1], "on_lateral": laterals[-1], "on_output": outs[-1]}[self.add_extra_convs]
            for i, conv in enumerate(self.extra_convs):
                inp = src if i == 0 else outs[-1]
                outs.append(conv(F.relu(inp) if self.relu_before and i else inp))  # mmdet: no ReLU before the first
        return outs

