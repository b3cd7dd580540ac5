"""Put a model in its fastest inference form (choices measured in bench/model_speed.py)."""
from __future__ import annotations

import torch
import torch.nn as nn

from models.common import Conv


def is_fused(model: nn.Module) -> bool:
    return not any(isinstance(m, Conv) and isinstance(m.bn, nn.BatchNorm2d) for m in model.modules())


def prepare_for_inference(model: nn.Module, input_shape: tuple[int, ...] | None = None, mode: str = "eager-cl"):
    """Eval mode, BatchNorm folded, then `mode`: 'eager' (as is), 'eager-cl' (channels_last weights: feed
    channels_last inputs for oneDNN's blocked kernels), or 'jit' (TorchScript trace frozen for a fixed input shape)."""
    model = model.eval()
    if hasattr(model, "fuse") and not is_fused(model):
        model.fuse()
    if mode == "eager":
        return model
    if mode == "eager-cl":
        return model.to(memory_format=torch.channels_last)
    if mode == "jit":
        if input_shape is None:
            raise ValueError("mode='jit' needs the input shape to trace with")
        p = next(model.parameters())
        example = torch.zeros(input_shape, device=p.device, dtype=p.dtype)
        with torch.inference_mode(False), torch.no_grad():
            traced = torch.jit.trace(model, example, strict=False, check_trace=False)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    raise ValueError(f"unknown inference mode {mode!r}: choose eager, eager-cl or jit")
