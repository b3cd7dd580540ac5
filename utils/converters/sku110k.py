"""SKU-110K csv -> YOLO labels and image lists (YOLOv5's SKU-110K.yaml conversion)."""
from __future__ import annotations

import csv
from pathlib import Path

from tqdm import tqdm

from utils.cli import UserValueError
from utils.converters.common import under, write_labels, xyxy_to_xywhn, yolo_row

COLUMNS = ("image", "x1", "y1", "x2", "y2", "class", "image_width", "image_height")


def read_sku_csv(path: Path) -> dict[str, list[str]]:
    """Rows per image name (sorted) of one headerless SKU-110K csv; class 0 (single-class set)."""
    rows: dict[str, list[str]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for r, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            if len(row) != len(COLUMNS):
                raise UserValueError(f"{path}: row {r} has {len(row)} columns, expected {len(COLUMNS)} {COLUMNS}")
            try:
                x1, y1, x2, y2, w, h = (float(row[i]) for i in (1, 2, 3, 4, 6, 7))
            except ValueError:
                raise UserValueError(f"{path}: row {r}: non-numeric box or image size {row}") from None
            rows.setdefault(row[0], []).append(yolo_row(0, xyxy_to_xywhn(x1, y1, x2, y2, w, h), ".5f"))
    return dict(sorted(rows.items()))


def convert_sku110k(root: Path, names: list[str], csvs: dict[str, str] | None = None) -> None:
    """annotations/annotations_{split}.csv -> labels/<image>.txt and {split}.txt listing ./images/<image>."""
    csvs = csvs or {s: f"annotations/annotations_{s}.csv" for s in ("train", "val", "test")}
    for split, rel in csvs.items():
        per_image = read_sku_csv(under(root, rel, "sku110k converter"))
        (root / f"{split}.txt").write_text("".join(f"./images/{im}\n" for im in per_image))
        write_labels({root / "labels" / f"{Path(im).stem}.txt": v
                      for im, v in tqdm(per_image.items(), desc=f"converting {rel}")})
