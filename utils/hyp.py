"""Hyperparameter YAML loading with key and type validation (YOLOv5 v7.0 key set)."""
from __future__ import annotations

from pathlib import Path

import yaml

from utils.cli import UserKeyError, UserTypeError, UserValueError
from utils.resolve import resolve_file

HYP_KEYS = (
    "lr0", "lrf", "momentum", "weight_decay", "warmup_epochs", "warmup_momentum", "warmup_bias_lr",
    "box", "cls", "cls_pw", "obj", "obj_pw", "iou_t", "anchor_t", "fl_gamma",
    "hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear", "perspective",
    "flipud", "fliplr", "mosaic", "mixup", "copy_paste",
)
OPTIONAL_KEYS = ("anchors", "label_smoothing", "dfl")  # tolerated: some YOLOv5 hyp files carry the first two; dfl is the anchor-free loss gain (hyp.v8.yaml)


def validate_hyp(hyp: dict, source: str = "<hyp>") -> dict[str, float]:
    """Check that `hyp` has exactly the YOLOv5 keys with numeric values; return a float dict."""
    if not isinstance(hyp, dict):
        raise UserValueError(f"{source}: expected a mapping of hyperparameters, got {type(hyp).__name__}")
    unknown = sorted(set(hyp) - set(HYP_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise UserKeyError(f"{source}: unknown hyperparameter key(s) {unknown}")
    missing = [k for k in HYP_KEYS if k not in hyp]
    if missing:
        raise UserKeyError(f"{source}: missing hyperparameter key(s) {missing}")
    out = {}
    for k, v in hyp.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UserTypeError(f"{source}: key '{k}' must be a number, got {v!r}")
        out[k] = float(v)
    return out


def load_hyp(path: str | Path) -> dict[str, float]:
    """Read and validate a hyp YAML: a path, or a name found in data/hyps/ (e.g. hyp.scratch-low.yaml)."""
    path = resolve_file(path, "hyp")
    with open(path, encoding="utf-8") as f:
        try:
            hyp = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise UserValueError(f"{path}: invalid YAML ({e})") from e
    return validate_hyp(hyp, str(path))
