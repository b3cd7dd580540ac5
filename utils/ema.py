"""Exponential moving average of model weights (YOLOv5's ModelEMA, ramped decay)."""
from __future__ import annotations

import math
from copy import deepcopy
from typing import Any

import torch
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model inside DataParallel / DistributedDataParallel wrappers."""
    wrapped = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    return model.module if isinstance(model, wrapped) else model


class ModelEMA:
    """Keeps `ema` = running average of a model's floating-point state (parameters and buffers).

    The decay ramps up as d(u) = decay * (1 - exp(-u / tau)) with the number of updates u, so the
    average follows the model closely early in training and smooths strongly later.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000, updates: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        if tau <= 0:
            raise ValueError(f"EMA tau must be > 0, got {tau}")
        self.ema = deepcopy(unwrap_model(model)).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.updates = int(updates)
        self.max_decay = float(decay)
        self.tau = float(tau)

    def decay(self, updates: int) -> float:
        """Decay used at update number `updates`."""
        return self.max_decay * (1.0 - math.exp(-updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Count one update, then ema = d * ema + (1 - d) * model on every floating-point entry."""
        self.updates += 1
        d = self.decay(self.updates)
        src = unwrap_model(model).state_dict()
        for name, value in self.ema.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(src[name].detach().to(value.dtype), alpha=1.0 - d)

    def update_attr(self, model: nn.Module, include: tuple[str, ...] = (),
                    exclude: tuple[str, ...] = ("process_group", "reducer", "training")) -> None:
        """Copy plain (non-underscore) attributes such as `names`, `yaml`, `hyp` from the model to ema.

        `training` is excluded by default so the EMA model stays in eval mode.
        """
        for key, value in unwrap_model(model).__dict__.items():
            if (include and key not in include) or key.startswith("_") or key in exclude:
                continue
            setattr(self.ema, key, value)

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint-friendly state: the averaged weights plus plain numbers."""
        return {"ema": self.ema.state_dict(), "updates": int(self.updates),
                "decay": self.max_decay, "tau": self.tau}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (e.g. on --resume)."""
        for key in ("ema", "updates"):
            if key not in state:
                raise KeyError(f"EMA state is missing '{key}'")
        self.ema.load_state_dict(state["ema"])
        self.updates = int(state["updates"])
        self.max_decay = float(state.get("decay", self.max_decay))
        self.tau = float(state.get("tau", self.tau))
