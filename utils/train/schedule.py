"""Learning-rate schedule (linear or cosine one-cycle over the epochs) and the per-iteration warmup."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch


def lr_lambda(epochs: int, lrf: float, cos: bool = False) -> Callable[[float], float]:
    """Multiplier of lr0 at epoch x: 1 -> lrf, linearly or along a half cosine."""
    if cos:
        return lambda x: ((1 - math.cos(x * math.pi / epochs)) / 2) * (lrf - 1) + 1
    return lambda x: (1 - x / epochs) * (1.0 - lrf) + lrf


def build_scheduler(opt: torch.optim.Optimizer, epochs: int, lrf: float, cos: bool = False,
                    start_epoch: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR positioned at `start_epoch`: group lrs = initial_lr * lf(start_epoch), next step() -> lf(+1).

    On --resume this is exactly the state of an uninterrupted run after `start_epoch` scheduler steps
    (YOLOv5 itself restarts one step behind and from lf(0) there).
    """
    lf = lr_lambda(epochs, lrf, cos)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=lf)
    sched.last_epoch = start_epoch
    for group in opt.param_groups:
        group["lr"] = group["initial_lr"] * lf(start_epoch)
    sched._last_lr = [g["lr"] for g in opt.param_groups]
    return sched


def warmup_iters(warmup_epochs: float, nb: int, minimum: int = 100) -> int:
    """Number of warmup iterations: max(round(warmup_epochs * nb), 100), or -1 for no warmup."""
    return max(round(warmup_epochs * nb), minimum) if warmup_epochs > 0 else -1


def apply_warmup(opt: torch.optim.Optimizer, ni: int, nw: int, hyp: dict, lf_epoch: float) -> None:
    """Ramp each group's lr from its warmup start (bias: warmup_bias_lr, others 0) to initial_lr*lf(epoch),
    and SGD momentum from warmup_momentum to momentum, over iterations [0, nw] (Adam betas stay, as YOLOv5)."""
    xi = [0, nw]
    for j, group in enumerate(opt.param_groups):
        start = hyp["warmup_bias_lr"] if j == 0 else 0.0
        group["lr"] = float(np.interp(ni, xi, [start, group["initial_lr"] * lf_epoch]))
        m = float(np.interp(ni, xi, [hyp["warmup_momentum"], hyp["momentum"]]))
        if "momentum" in group:
            group["momentum"] = m


def warmup_accumulate(ni: int, nw: int, target: float) -> int:
    """YOLOv5's accumulation ramp during warmup: 1 -> target (= 64 / batch size) micro-steps per step."""
    return max(1, int(np.interp(ni, [0, nw], [1, target]).round()))
