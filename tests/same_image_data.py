"""A deterministic training set for exact run-to-run comparisons: copies of one demo image, augmentation off."""
from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.demo_subset import demo_subset_yaml
from utils.data.data_yaml import load_data_yaml
from utils.data.files import img2label_paths

REPO = Path(__file__).resolve().parents[1]
AUGMENT_KEYS = ("hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear", "perspective", "flipud",
                "fliplr", "mosaic", "mixup")


def same_image_yaml(tmp: Path, n: int) -> Path:
    """tmp/same.yaml over n copies of the first demo image and its labels (train = val).

    Every batch of a given size then holds the same pixels and targets whichever images a sampler draws, so
    runs that shuffle differently (DDP ranks, a resumed run) can be compared weight for weight."""
    cfg = load_data_yaml(demo_subset_yaml(tmp, 1, 1))
    src = Path((tmp / "train.txt").read_text().split()[0])
    (tmp / "images").mkdir()
    (tmp / "labels").mkdir()
    for i in range(n):
        shutil.copy(src, tmp / "images" / f"{i}{src.suffix}")
        shutil.copy(img2label_paths([str(src)])[0], tmp / "labels" / f"{i}.txt")
    data = tmp / "same.yaml"
    data.write_text(yaml.safe_dump({"path": str(tmp), "train": "images", "val": "images", "names": cfg.names}))
    return data


def no_augment_hyp(tmp: Path, **changes: float) -> Path:
    """tmp/hyp.yaml: hyp.scratch-low with every augmentation gain 0 and the given keys changed."""
    hyp = yaml.safe_load((REPO / "data" / "hyps" / "hyp.scratch-low.yaml").read_text())
    hyp.update(dict.fromkeys(AUGMENT_KEYS, 0.0), **changes)
    f = tmp / "hyp.yaml"
    f.write_text(yaml.safe_dump(hyp))
    return f
