"""Optimizer with YOLOv5's three parameter groups: biases, weights with decay, norm-layer weights without."""
from __future__ import annotations

import torch
from torch import nn

NORM_TYPES = tuple(v for k, v in vars(nn).items() if isinstance(v, type) and "Norm" in k)


def param_groups(model: nn.Module) -> tuple[list, list, list]:
    """(weights with decay, norm weights (no decay), biases (no decay)); frozen parameters are included too."""
    decay, norm, bias = [], [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if name == "bias":
                bias.append(p)
            elif name == "weight" and isinstance(module, NORM_TYPES):
                norm.append(p)
            else:
                decay.append(p)
    return decay, norm, bias


def build_optimizer(model: nn.Module, name: str = "SGD", lr: float = 0.01, momentum: float = 0.937,
                    decay: float = 5e-4) -> torch.optim.Optimizer:
    """SGD (Nesterov) / Adam / AdamW (betas (momentum, 0.999)); group 0 biases, 1 decayed weights, 2 norm weights.

    The group order matches YOLOv5: the warmup gives group 0 (biases) its own starting lr (`warmup_bias_lr`).
    """
    decay_w, norm_w, bias = param_groups(model)
    if name == "SGD":
        opt = torch.optim.SGD(bias, lr=lr, momentum=momentum, nesterov=True)
    elif name == "Adam":
        opt = torch.optim.Adam(bias, lr=lr, betas=(momentum, 0.999))
    elif name == "AdamW":
        opt = torch.optim.AdamW(bias, lr=lr, betas=(momentum, 0.999), weight_decay=0.0)
    else:
        raise ValueError(f"--optimizer must be SGD, Adam or AdamW, got {name!r}")
    opt.add_param_group({"params": decay_w, "weight_decay": decay})
    opt.add_param_group({"params": norm_w, "weight_decay": 0.0})
    return opt


def describe(opt: torch.optim.Optimizer) -> str:
    """'SGD(lr=0.01) with parameter groups 57 weight(decay=0.0), 60 weight(decay=0.0005), 60 bias' (YOLOv5's log)."""
    g = opt.param_groups
    return (f"{type(opt).__name__}(lr={g[0]['lr']}) with parameter groups {len(g[2]['params'])} weight(decay=0.0), "
            f"{len(g[1]['params'])} weight(decay={g[1]['weight_decay']}), {len(g[0]['params'])} bias")
