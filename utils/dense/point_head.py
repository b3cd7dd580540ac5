"""What the point families (FCOS, YOLOX) share: config with `strides`, point priors."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from utils.dense.head_config import MODULE_KEYS, head_defaults, number, part_error
from utils.dense.outs_check import check_outs
from utils.dense.predict import check_test_cfg
from utils.dense.registry import build_part

Outs = Mapping[str, Sequence[torch.Tensor]]


class PointHeadMath:
    """Base of the point families; subclasses set DEFAULTS, MATH_KEYS and POINT_OFFSET."""

    head_type = ""
    DEFAULTS: dict = {}
    MATH_KEYS: tuple = ()
    POINT_OFFSET = 0.5
    forward_output_names: tuple = ()
    num_base_priors = 1

    def __init__(self, head_cfg: Mapping[str, Any] | None = None, where: str = "head_cfg"):
        known = (*MODULE_KEYS, *self.MATH_KEYS)
        cfg = head_defaults(self.DEFAULTS, dict(head_cfg or {}), self.head_type, known, where)
        self.cfg, self.where = cfg, where
        self.num_classes = number(cfg, "num_classes", where, integer=True, minimum=1)
        spec = cfg.get("prior_generator") or {"type": "MlvlPointGenerator", "strides": cfg["strides"],
                                              "offset": self.POINT_OFFSET}
        self.prior_generator = build_part("prior_generator", spec, f"{where}.prior_generator")
        if not hasattr(self.prior_generator, "offset"):
            raise part_error(f"{where}.prior_generator.type",
                             "a point head needs a point generator (MlvlPointGenerator)")
        self.test_cfg = check_test_cfg(cfg.get("test_cfg"), f"{where}.test_cfg")

    @property
    def strides(self) -> list[int]:
        return [s[0] for s in self.prior_generator.strides]

    @property
    def output_channels(self) -> dict[str, int]:
        """Channels of each raw output map, keyed by forward_output_names."""
        per = {"cls_scores": self.num_classes, "bbox_preds": 4, "centernesses": 1, "objectnesses": 1}
        return {k: per[k] for k in self.forward_output_names}

    def check_outs(self, outs: Outs) -> dict[str, list[torch.Tensor]]:
        """Every output present, one map per level, channels as output_channels (a clear error otherwise); float32."""
        return check_outs(outs, self.output_channels, self.prior_generator.num_levels, self.head_type)

    def priors(self, featmap_sizes: Sequence[Sequence[int]], device: torch.device | str = "cpu",
               with_stride: bool = False) -> list[torch.Tensor]:
        """Points of one image, per level (H*W, 2) x, y px (with_stride: (H*W, 4) x, y, stride_w, stride_h)."""
        return self.prior_generator.grid_priors([tuple(s) for s in featmap_sizes], device=device,
                                                with_stride=with_stride)
