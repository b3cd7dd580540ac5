"""Mixed precision: float16 AMP on CUDA (with a self-check) and an optional bfloat16 autocast on CPU."""
from __future__ import annotations

import contextlib
import logging
from copy import deepcopy

import torch
from torch import nn

LOGGER = logging.getLogger("yolo")


class Precision:
    """How the forward pass runs: autocast dtype (or None for float32) and the gradient scaler."""

    def __init__(self, device: torch.device, amp: bool = False, bf16: bool = False) -> None:
        self.device_type = device.type
        self.dtype = torch.float16 if amp else torch.bfloat16 if bf16 else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp)

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context for the forward pass (a no-op in float32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def check_amp(model: nn.Module, device: torch.device, imgsz: int = 256, rtol: float = 0.05) -> bool:
    """True if float16 autocast gives the same detections as float32 on this device (CUDA only).

    Compares the decoded eval outputs (boxes and scores) of a copy of the model on a fixed input; a
    relative L2 difference above `rtol`, a non-finite value or an error means AMP stays off.
    """
    if device.type != "cuda":
        return False
    prefix = "AMP: "
    try:
        m = deepcopy(model).to(device).eval()
        gen = torch.Generator(device="cpu").manual_seed(0)
        x = torch.rand((1, 3, imgsz, imgsz), generator=gen).to(device)
        with torch.no_grad():
            ref = m(x)[0].float()
            with torch.autocast("cuda", dtype=torch.float16):
                out = m(x)[0].float()
        err = float((out - ref).norm() / ref.norm().clamp_min(1e-12))
        ok = bool(torch.isfinite(out).all()) and err < rtol
    except Exception as e:  # any failure of the check means: train in float32
        LOGGER.warning(f"{prefix}checks failed ({e}), training in float32")
        return False
    if ok:
        LOGGER.info(f"{prefix}checks passed (relative difference {err:.2e})")
    else:
        LOGGER.warning(f"{prefix}checks failed (relative difference {err:.2e}), training in float32")
    return ok
