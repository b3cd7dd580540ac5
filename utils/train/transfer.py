"""--weights: copy the tensors whose names and shapes match from a checkpoint into a new model."""
from __future__ import annotations

import torch
from torch import nn


def intersect_state_dicts(src: dict[str, torch.Tensor], dst: dict[str, torch.Tensor],
                          exclude: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Entries of `src` present in `dst` with the same shape, minus names containing an `exclude` substring."""
    return {k: v for k, v in src.items()
            if k in dst and v.shape == dst[k].shape and not any(x in k for x in exclude)}


def transfer_weights(model: nn.Module, src: dict[str, torch.Tensor], exclude: tuple[str, ...] = ()) -> tuple[int, int]:
    """Load the matching tensors (cast to the model's dtypes); returns (transferred, total in the model)."""
    dst = model.state_dict()
    match = intersect_state_dicts(src, dst, exclude)
    model.load_state_dict({k: v.to(dst[k].dtype) for k, v in match.items()}, strict=False)
    return len(match), len(dst)
