"""What the mmdetection-family heads (RetinaHead, FCOSHead, ATSSHead, GFLHead, YOLOXHead) share: their YAML row
contract, the head contract of models/head_protocol.py, and the split of raw maps into mmdet's named outputs.

YAML row: `[from, 1, RetinaHead, [nc]]` or `[from, 1, RetinaHead, [nc, head_cfg]]`; `from` names the levels
(fine to coarse, e.g. the 5 maps of an FPN row or separate rows), all with the same channels; `head_cfg`
is a mapping in mmdetection's head structure (defaults per family and merge rule: utils/dense's,
`utils.dense.families.head_config`, each family's DEFAULTS) whose parts are checked when the row is built,
errors naming the file, the row and the key.

Raw maps per level (training output, the loss's input): the head's named outputs (`output_names`, mmdet's
order: cls_scores, bbox_preds, then centernesses / objectnesses) concatenated on the channel axis.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable, Sequence

import torch
import torch.nn as nn

from models.registry import Layout, Row
from utils.cli import UserError, UserValueError
from utils.dense.families import head_config as family_head_config
from utils.dense.decoded_postprocess import postprocess_decoded


def head_config(family: str, nc: int, in_channels: int, user: dict | None, where: str = "head_cfg") -> dict:
    """utils/dense's full head dict (num_classes, in_channels, every default, `user` merged in), with the checks
    of what the module builds from it (stacked_convs, feat_channels); errors name the key path."""
    cfg = family_head_config(family, nc, in_channels, user, where)
    for key, least in (("stacked_convs", 0), ("feat_channels", 1)):
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < least:
            raise UserValueError(f"{where}.{key}: must be a positive int, got {cfg[key]!r}")
    return cfg


def level_strides(cfg: dict) -> list[int]:
    """The strides the config's prior generator names (anchor_generator.strides or strides)."""
    gen = cfg.get("anchor_generator")
    return list(gen["strides"]) if gen else list(cfg["strides"])


def flatten_inputs(c_in: list) -> list[int]:
    """Input channels per level: separate rows ([c3, c4, c5]) or one row giving a list of maps ([[c] * 5])."""
    out: list[int] = []
    for c in c_in:
        out.extend(c if isinstance(c, list) else [c])
    return out


def head_layout(family: str) -> Callable[[Row], Layout]:
    """The registry's layout function of one dense head family's rows (dense_head_layout with its name)."""
    return partial(dense_head_layout, family=family)


def dense_head_layout(row: Row, family: str) -> Layout:
    """[nc] or [nc, head_cfg] -> Head(nc, ch, cfg) with the full mmdet-style config (defaults merged, checked)."""
    if not 1 <= len(row.args) <= 2 or not isinstance(row.args[0], int) or isinstance(row.args[0], bool):
        raise ValueError(f"{family} takes [nc] or [nc, head_cfg] (head_cfg: a mapping or the name of a top-level "
                         f"mapping), got {row.args}")
    user = row.args[1] if len(row.args) == 2 else None
    if isinstance(user, str):
        raise ValueError(f"{family}: head_cfg {user!r} is neither a mapping nor a top-level key of the YAML")
    ch = flatten_inputs(row.c_in)
    if len(set(ch)) != 1:
        raise ValueError(f"{family} shares its convs across levels: every input needs the same channels, got {ch}")
    from models.dense_heads.parts import check_parts

    try:  # utils/dense's errors (some are KeyErrors) as the ValueError parse_model names the file and row with
        cfg = head_config(family, row.args[0], ch[0], user)
        check_parts(cfg, "head_cfg")
    except UserError as e:
        raise ValueError(e.args[0] if e.args else str(e)) from None
    if len(level_strides(cfg)) != len(ch):
        raise ValueError(f"{family}: {len(ch)} input levels but head_cfg names {len(level_strides(cfg))} strides "
                         f"{level_strides(cfg)}")
    return Layout([row.args[0], ch, cfg], 0)


class DenseHead(nn.Module):
    """Common part of the mmdet-family heads; subclasses build the towers and `forward_level`."""

    family = ""
    loss_name = ""  # utils/loss_factory.LOSSES key (utils/loss_dense.py)
    has_objectness = False  # decoded rows carry a score factor (FCOS / ATSS centerness, YOLOX objectness)
    multi_label = True  # every class above the threshold (mmdet's BaseDenseHead); YOLOX keeps the best class
    na = 1  # priors per cell (anchor heads: anchors per cell)
    has_anchors = False  # mmdet's anchors are generated from the config, not refitted by autoanchor
    output_names: tuple[str, ...] = ("cls_scores", "bbox_preds")

    def __init__(self, nc: int, ch: Sequence[int], cfg: dict | None = None):
        super().__init__()
        self.cfg = cfg if cfg is not None else head_config(self.family, nc, ch[0], None)
        self.nc, self.nl = nc, len(ch)
        self.register_buffer("stride", torch.tensor(level_strides(self.cfg), dtype=torch.float), persistent=False)
        self.export = False

    # ------------------------------------------------------------------ contract
    @property
    def test_cfg(self) -> dict:
        """Post-processing as mmdet's test_cfg states it (score_thr, nms iou, nms_pre per level, max_per_img,
        min_bbox_size) and the decoded rows' layout it needs (utils/dense/decoded_postprocess.py); plain JSON
        values, so exports store it in their metadata."""
        t = self.cfg["test_cfg"]
        return {"score_thr": float(t.get("score_thr", 0.05)), "iou_thres": float(t["nms"]["iou_threshold"]),
                "nms_pre": int(t.get("nms_pre", -1)),
                "max_per_img": int(t.get("max_per_img", -1)) if self.multi_label else -1,  # mmdet's YOLOX ignores it
                "min_bbox_size": float(t.get("min_bbox_size", -1)), "multi_label": self.multi_label,
                "score_factor": self.has_objectness, "strides": [float(s) for s in level_strides(self.cfg)],
                "priors_per_cell": self.na}

    def postprocess(self, decoded: torch.Tensor, hw: Sequence[int], **nms_kw) -> list[torch.Tensor]:
        """The contract's post-processing: mmdet's, per level (utils/dense/decoded_postprocess.py)."""
        return postprocess_decoded(decoded, hw, self.test_cfg, **nms_kw)

    @property
    def no(self) -> int:
        return sum(self.out_channels())

    def out_channels(self) -> list[int]:
        """Channels of each named output, in `output_names` order."""
        raise NotImplementedError

    def forward(self, x: list[torch.Tensor]):
        if x and isinstance(x[0], (list, tuple)):  # the level list of a single FPN-style row
            x = [t for level in x for t in level]
        raw = [torch.cat(self.forward_level(f, i), 1) for i, f in enumerate(x)]
        if self.training:
            return raw
        out = self.decode(raw)
        return (out,) if self.export else (out, raw)

    def forward_level(self, x: torch.Tensor, i: int) -> list[torch.Tensor]:
        raise NotImplementedError

    def split(self, raw: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        """Raw per-level maps -> mmdet's `outs` {name: per-level list of (B, C, H, W)}."""
        outs: dict[str, list[torch.Tensor]] = {n: [] for n in self.output_names}
        for r in raw:
            for name, t in zip(self.output_names, r.split(self.out_channels(), 1)):
                outs[name].append(t)
        return outs

    def image_hw(self, raw: list[torch.Tensor]) -> tuple[int, int]:
        """The input size the first level implies (its map size x its stride)."""
        s = float(self.stride[0])
        return int(raw[0].shape[2] * s), int(raw[0].shape[3] * s)

    def clip_hw(self, raw: list[torch.Tensor]) -> tuple:
        """image_hw kept traceable (no int()): exports with dynamic shapes clip to their own input size."""
        s = float(self.stride[0])
        return raw[0].shape[2] * s, raw[0].shape[3] * s

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def output_convs(self, layers: nn.Sequential) -> list[nn.Module | None]:
        """The class predictor(s), where the prior probability bias goes."""
        return [self.cls_predictor(i) for i in range(self.nl)]

    def cls_predictor(self, i: int) -> nn.Conv2d:
        raise NotImplementedError

    def initialize_biases(self, class_freq: torch.Tensor | None = None, convs=None) -> None:
        """mmdet's init: head convs normal(0, 0.01) with zero bias (all but YOLOX), class bias -log((1 - p) / p)
        with the prior probability p = 0.01 (YOLOX also for the objectness)."""
        self._check_strides()
        self.init_convs()
        prior = -math.log((1 - 0.01) / 0.01)
        for conv in {id(c): c for c in self.output_convs(nn.Sequential())}.values():
            nn.init.constant_(conv.bias, prior)

    def init_convs(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.01)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

    def _check_strides(self) -> None:
        want = level_strides(self.cfg)
        got = [float(s) for s in self.stride]
        if got != [float(s) for s in want]:
            raise ValueError(f"{self.family}: its inputs have strides {got} but head_cfg names {want}; "
                             f"set head_cfg's strides to the levels the row takes")
