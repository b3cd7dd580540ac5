"""Shape check of a head's raw outputs before the family math reads them, with an error that says what was expected."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch


def check_outs(outs: Mapping[str, Sequence[torch.Tensor]], channels: Mapping[str, int], num_levels: int,
               head_type: str) -> dict[str, list[torch.Tensor]]:
    """outs has every key of `channels`, each a list of num_levels (N, channels, H, W) maps agreeing with
    cls_scores; returned in float32 (half-precision maps from autocast are cast, keeping the graph)."""
    missing = [k for k in channels if k not in outs]
    if missing:
        raise ValueError(f"{head_type} outputs need {list(channels)}; missing {missing} (got {list(outs)})")
    first = outs["cls_scores"]
    for key, c in channels.items():
        maps = outs[key]
        if len(maps) != num_levels:
            raise ValueError(f"{head_type} outputs['{key}'] has {len(maps)} levels; the head has {num_levels}")
        for lvl, (m, ref) in enumerate(zip(maps, first)):
            if m.dim() != 4 or m.shape[1] != c or m.shape[0] != ref.shape[0] or m.shape[-2:] != ref.shape[-2:]:
                raise ValueError(f"{head_type} outputs['{key}'][{lvl}] is {tuple(m.shape)}; expected "
                                 f"({ref.shape[0]}, {c}, {ref.shape[-2]}, {ref.shape[-1]})")
    return {k: [m.float() for m in outs[k]] for k in channels}
