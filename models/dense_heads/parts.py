"""Checks of a head config's parts when the row is built: each part is built once through utils/dense's
registry (`build_part`), so an unknown name or a bad parameter fails with its key path (`head_cfg.loss_cls.gamma`);
parse_model adds the file and the row."""
from __future__ import annotations

# head_cfg key -> part kind of utils/dense/registry.py
PART_KINDS = {"anchor_generator": "prior_generator", "bbox_coder": "bbox_coder", "loss_cls": "loss",
              "loss_bbox": "loss", "loss_centerness": "loss", "loss_dfl": "loss", "loss_obj": "loss", "loss_l1": "loss"}
TRAIN_KINDS = {"assigner": "assigner", "sampler": "sampler"}
TRAIN_SETTINGS = ("allowed_border", "pos_weight", "debug")


def check_parts(cfg: dict, where: str) -> None:
    """Build every named part once; errors (ValueErrors, or utils/dense's UserErrors) name `where.<key>`; the
    row's layout (models/dense_heads/base.py) turns them into the ValueError parse_model adds the file to."""
    from utils.dense.predict import check_test_cfg
    from utils.dense.registry import build_part

    for key, kind in PART_KINDS.items():
        if key in cfg:
            build_part(kind, cfg[key], f"{where}.{key}")
    train = cfg.get("train_cfg")
    if train is not None:
        if not isinstance(train, dict):
            raise ValueError(f"{where}.train_cfg: must be a mapping or null, got {train!r}")
        for key in train:
            if key not in TRAIN_KINDS and key not in TRAIN_SETTINGS:
                raise ValueError(f"{where}.train_cfg.{key}: unknown key; known: "
                                 f"{sorted([*TRAIN_KINDS, *TRAIN_SETTINGS])}")
        for key, kind in TRAIN_KINDS.items():
            if key in train:
                build_part(kind, train[key], f"{where}.train_cfg.{key}")
    check_test_cfg(cfg.get("test_cfg"), f"{where}.test_cfg")
