"""The loss dict of a family's loss_by_feat (single tensors or per-level lists) as a total, as per-key items and
as the trainer's grouped items (a family's LOSS_ITEMS)."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

Losses = Mapping[str, "torch.Tensor | Sequence[torch.Tensor]"]
ItemGroups = Sequence[tuple[str, Sequence[str]]]  # (item name, the loss keys summed into it)


def _sum(value) -> torch.Tensor:
    return sum(value) if isinstance(value, (list, tuple)) else value


def total_loss(losses: Losses) -> torch.Tensor:
    """Sum of every entry over all levels (what mmdetection's parse_losses adds up for `loss`)."""
    return sum(_sum(v) for v in losses.values())


def loss_items(losses: Losses) -> dict[str, float]:
    """Per key, the detached sum over levels."""
    return {k: float(_sum(v).detach()) for k, v in losses.items()}


def grouped_items(losses: Losses, groups: ItemGroups, zero: torch.Tensor) -> torch.Tensor:
    """(len(groups),) per group the sum over its keys (each summed over levels; keys absent count 0), not detached."""
    flat = {k: _sum(v) for k, v in losses.items()}
    return torch.stack([sum((flat[k] for k in keys if k in flat), zero) for _, keys in groups])
