"""The mmdetection-style configuration of a dense head: defaults per family, merged with a YAML's `head_cfg`.

A head row reads `[nc]` or `[nc, head_cfg]`, where `head_cfg` names a top-level YAML mapping (or is written
inline) in mmdetection's structure: `stacked_convs`, `feat_channels`, `norm_cfg`, the parts
(`anchor_generator`, `bbox_coder`, `loss_cls`, `loss_bbox`, ...), `train_cfg` (assigner) and `test_cfg`
(score_thr, nms, nms_pre, max_per_img). A part given with the family default's `type` is merged key by key
into the default; a part with another `type` replaces it. Unknown keys are refused, naming the key path.
"""
from __future__ import annotations

import copy
from typing import Any

FOCAL = {"type": "FocalLoss", "use_sigmoid": True, "gamma": 2.0, "alpha": 0.25, "loss_weight": 1.0}
BCE = {"type": "CrossEntropyLoss", "use_sigmoid": True, "loss_weight": 1.0}
STRIDES5 = [8, 16, 32, 64, 128]
GN32 = {"type": "GN", "num_groups": 32, "requires_grad": True}
TEST_CFG = {"nms_pre": 1000, "min_bbox_size": 0, "score_thr": 0.05, "nms": {"type": "nms", "iou_threshold": 0.5},
            "max_per_img": 100}

# the mmdetection 3.3 configs each family's reference was made from (see ../shared/reference/mmdet/README.md)
DEFAULTS: dict[str, dict] = {
    "RetinaHead": {
        "stacked_convs": 4, "feat_channels": 256, "norm_cfg": None, "reg_decoded_bbox": False,
        "anchor_generator": {"type": "AnchorGenerator", "octave_base_scale": 4, "scales_per_octave": 3,
                             "ratios": [0.5, 1.0, 2.0], "strides": STRIDES5},
        "bbox_coder": {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4, "target_stds": [1.0] * 4},
        "loss_cls": FOCAL, "loss_bbox": {"type": "L1Loss", "loss_weight": 1.0},
        "train_cfg": {"assigner": {"type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.4,
                                   "min_pos_iou": 0, "ignore_iof_thr": -1},
                      "sampler": {"type": "PseudoSampler"}, "allowed_border": -1, "pos_weight": -1, "debug": False},
        "test_cfg": TEST_CFG},
    "FCOSHead": {
        "stacked_convs": 4, "feat_channels": 256, "norm_cfg": GN32, "strides": STRIDES5,
        "regress_ranges": [[-1, 64], [64, 128], [128, 256], [256, 512], [512, 1e8]],
        "center_sampling": False, "center_sample_radius": 1.5, "norm_on_bbox": False, "centerness_on_reg": False,
        "bbox_coder": {"type": "DistancePointBBoxCoder"},
        "loss_cls": FOCAL, "loss_bbox": {"type": "IoULoss", "loss_weight": 1.0}, "loss_centerness": BCE,
        "train_cfg": None, "test_cfg": TEST_CFG},
    "ATSSHead": {
        "stacked_convs": 4, "feat_channels": 256, "norm_cfg": GN32,
        "anchor_generator": {"type": "AnchorGenerator", "ratios": [1.0], "octave_base_scale": 8,
                             "scales_per_octave": 1, "strides": STRIDES5},
        "bbox_coder": {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4, "target_stds": [0.1, 0.1, 0.2, 0.2]},
        "loss_cls": FOCAL, "loss_bbox": {"type": "GIoULoss", "loss_weight": 2.0}, "loss_centerness": BCE,
        "train_cfg": {"assigner": {"type": "ATSSAssigner", "topk": 9}, "allowed_border": -1, "pos_weight": -1,
                      "debug": False},
        "test_cfg": {**TEST_CFG, "nms": {"type": "nms", "iou_threshold": 0.6}}},
    "GFLHead": {
        "stacked_convs": 4, "feat_channels": 256, "norm_cfg": GN32, "reg_max": 16,
        "anchor_generator": {"type": "AnchorGenerator", "ratios": [1.0], "octave_base_scale": 8,
                             "scales_per_octave": 1, "strides": STRIDES5},
        "bbox_coder": {"type": "DistancePointBBoxCoder"},
        "loss_cls": {"type": "QualityFocalLoss", "use_sigmoid": True, "beta": 2.0, "loss_weight": 1.0},
        "loss_dfl": {"type": "DistributionFocalLoss", "loss_weight": 0.25},
        "loss_bbox": {"type": "GIoULoss", "loss_weight": 2.0},
        "train_cfg": {"assigner": {"type": "ATSSAssigner", "topk": 9}, "allowed_border": -1, "pos_weight": -1,
                      "debug": False},
        "test_cfg": {**TEST_CFG, "nms": {"type": "nms", "iou_threshold": 0.6}}},
    "YOLOXHead": {
        "stacked_convs": 2, "feat_channels": 256, "strides": [8, 16, 32], "use_depthwise": False,
        "norm_cfg": {"type": "BN", "momentum": 0.03, "eps": 0.001}, "act_cfg": {"type": "Swish"},
        "loss_cls": {"type": "CrossEntropyLoss", "use_sigmoid": True, "reduction": "sum", "loss_weight": 1.0},
        "loss_bbox": {"type": "IoULoss", "mode": "square", "eps": 1e-16, "reduction": "sum", "loss_weight": 5.0},
        "loss_obj": {"type": "CrossEntropyLoss", "use_sigmoid": True, "reduction": "sum", "loss_weight": 1.0},
        "loss_l1": {"type": "L1Loss", "reduction": "sum", "loss_weight": 1.0},
        "train_cfg": {"assigner": {"type": "SimOTAAssigner", "center_radius": 2.5}},
        "test_cfg": {"score_thr": 0.01, "nms": {"type": "nms", "iou_threshold": 0.65}}},
}
# keys that hold a part with a `type` (merged only when the type is kept)
PART_KEYS = ("anchor_generator", "bbox_coder", "loss_cls", "loss_bbox", "loss_centerness", "loss_dfl", "loss_obj",
             "loss_l1", "assigner", "sampler", "nms", "norm_cfg", "act_cfg")


def _merge(base: Any, over: Any, path: str) -> Any:
    if not isinstance(over, dict) or not isinstance(base, dict):
        return copy.deepcopy(over)
    if path.rsplit(".", 1)[-1] in PART_KEYS and over.get("type", base.get("type")) != base.get("type"):
        return copy.deepcopy(over)
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k not in base and path.rsplit(".", 1)[-1] not in PART_KEYS:
            raise ValueError(f"{path}.{k}: unknown key; known: {sorted(base)}")
        out[k] = _merge(base[k], v, f"{path}.{k}") if k in base else copy.deepcopy(v)
    return out


def head_config(family: str, nc: int, in_channels: int, user: dict | None, where: str = "head_cfg") -> dict:
    """The full mmdet-style head dict (num_classes, in_channels, every default) with `user` merged in."""
    if user is not None and not isinstance(user, dict):
        raise ValueError(f"{where}: must be a mapping in mmdetection's head structure, got {user!r}")
    base = copy.deepcopy(DEFAULTS[family])
    for k in (user or {}):
        if k not in base:
            raise ValueError(f"{where}.{k}: unknown key for {family}; known: {sorted(base)}")
    cfg = {k: (_merge(v, (user or {})[k], f"{where}.{k}") if k in (user or {}) else v) for k, v in base.items()}
    for key in ("stacked_convs", "feat_channels"):
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < (1 if key == "feat_channels" else 0):
            raise ValueError(f"{where}.{key}: must be a positive int, got {cfg[key]!r}")
    return {"type": family, "num_classes": nc, "in_channels": in_channels, **cfg}


def level_strides(cfg: dict) -> list[int]:
    """The strides the config's prior generator names (anchor_generator.strides or strides)."""
    gen = cfg.get("anchor_generator")
    return list(gen["strides"]) if gen else list(cfg["strides"])
