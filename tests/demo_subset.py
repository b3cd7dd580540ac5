"""A data YAML over the first images of the embedded demo dataset, for short end-to-end training tests."""
from __future__ import annotations

from pathlib import Path

import yaml

from utils.downloads import ensure_dataset
from utils.data.files import list_image_files

REPO = Path(__file__).resolve().parents[1]


def demo_subset_yaml(tmp: Path, n_train: int, n_val: int) -> Path:
    """Write tmp/subset.yaml listing the first n_train / n_val demo images (labels are found next to them)."""
    cfg = ensure_dataset(REPO / "data" / "shapes.yaml")  # generates datasets/shapes on first use
    for split, n in (("train", n_train), ("val", n_val)):
        files = list_image_files(cfg[split])[:n]
        (tmp / f"{split}.txt").write_text("\n".join(files) + "\n")
    f = tmp / "subset.yaml"
    f.write_text(yaml.safe_dump({"path": str(tmp), "train": "train.txt", "val": "val.txt", "names": cfg.names}))
    return f
