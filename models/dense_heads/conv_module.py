"""mmdetection-style building pieces of the dense heads: `ConvModule` (conv, optional GN / BN, activation) and
`Scale` (a learnable per-level scalar).

The submodule names (`conv`, `gn` / `bn`, `act`) follow mmcv's ConvModule so an mmdet state_dict maps onto these
heads key for key (see models/mmdet_import.py). `bias="auto"` gives the conv a bias only when there is no norm.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

NORMS = ("GN", "BN", None)
ACTS = {"ReLU": nn.ReLU, "Swish": nn.SiLU, "SiLU": nn.SiLU, None: None}


def norm_spec(cfg: Any, where: str) -> tuple[str | None, dict]:
    """mmdet `norm_cfg` ({type: GN, num_groups: 32} / {type: BN, momentum, eps} / None) -> (kind, kwargs)."""
    if cfg is None:
        return None, {}
    if not isinstance(cfg, dict) or cfg.get("type") not in ("GN", "BN"):
        raise ValueError(f"{where}: norm_cfg must be null or a mapping with type GN or BN, got {cfg!r}")
    kw = {k: v for k, v in cfg.items() if k not in ("type", "requires_grad")}
    allowed = {"GN": {"num_groups", "eps"}, "BN": {"momentum", "eps"}}[cfg["type"]]
    if set(kw) - allowed:
        raise ValueError(f"{where}: norm_cfg {cfg['type']} takes {sorted(allowed)}, got {sorted(kw)}")
    return cfg["type"], kw


def act_spec(cfg: Any, where: str) -> str | None:
    """mmdet `act_cfg` ({type: ReLU} / {type: Swish} / None) -> the activation name."""
    if cfg is None:
        return None
    name = cfg.get("type") if isinstance(cfg, dict) else None
    if name not in ACTS or name is None:
        raise ValueError(f"{where}: act_cfg must be null or a mapping with type one of "
                         f"{sorted(k for k in ACTS if k)}, got {cfg!r}")
    return name


class ConvModule(nn.Module):
    """Conv2d -> (GroupNorm | BatchNorm2d) -> activation, mmcv's order and names."""

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1, norm: str | None = None, norm_kw: dict | None = None,
                 act: str | None = "ReLU", bias: bool | str = "auto"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        bias = norm is None if bias == "auto" else bool(bias)
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=bias)
        norm_kw = dict(norm_kw or {})
        if norm == "GN":
            self.gn = nn.GroupNorm(norm_kw.pop("num_groups", 32), c2, **norm_kw)
        elif norm == "BN":
            self.bn = nn.BatchNorm2d(c2, **norm_kw)
            self.bn.keep_own_init = True  # models' initialize_weights keeps the eps / momentum the config gave
        self.norm_name = {"GN": "gn", "BN": "bn"}.get(norm)
        self.act = ACTS[act]() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm_name:
            x = getattr(self, self.norm_name)(x)
        return self.act(x)


class Scale(nn.Module):
    """A learnable scalar multiplying a level's box regression (FCOS, ATSS, GFL)."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale, dtype=torch.float))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def stacked_convs(c1: int, c: int, n: int, norm: str | None, norm_kw: dict, act: str | None,
                  bias: bool | str = "auto") -> nn.ModuleList:
    """`n` ConvModules (3x3), the first from c1 channels, the rest c -> c."""
    return nn.ModuleList(ConvModule(c1 if i == 0 else c, c, 3, 1, norm, norm_kw, act, bias) for i in range(n))


def conv_tower(cfg: dict, c1: int, where: str = "head_cfg") -> nn.ModuleList:
    """One branch of a head config (mmdet's cls_convs / reg_convs): `stacked_convs` ConvModules of `feat_channels`
    with its norm_cfg and act_cfg (ReLU when the config has none), the first from c1 channels."""
    norm, norm_kw = norm_spec(cfg["norm_cfg"], f"{where}.norm_cfg")
    act = act_spec(cfg.get("act_cfg", {"type": "ReLU"}), f"{where}.act_cfg")
    return stacked_convs(c1, cfg["feat_channels"], cfg["stacked_convs"], norm, norm_kw, act)


def tower_channels(cfg: dict, c1: int) -> int:
    """Channels a tower outputs (its input's when it has no convs): what the predictors take."""
    return cfg["feat_channels"] if cfg["stacked_convs"] else c1


def run_convs(convs: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for m in convs:
        x = m(x)
    return x
