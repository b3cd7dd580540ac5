"""The loss dict of a family's loss_by_feat (single tensors or per-level lists) as a total and as logged items."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

Losses = Mapping[str, "torch.Tensor | Sequence[torch.Tensor]"]


def _sum(value) -> torch.Tensor:
    return sum(value) if isinstance(value, (list, tuple)) else value


def total_loss(losses: Losses) -> torch.Tensor:
    """Sum of every entry over all levels (what mmdetection's parse_losses adds up for `loss`)."""
    return sum(_sum(v) for v in losses.values())


def loss_items(losses: Losses) -> dict[str, float]:
    """Per key, the detached sum over levels."""
    return {k: float(_sum(v).detach()) for k, v in losses.items()}
