"""Global Wheat csv (`image_name,BoxesString,domain`, boxes `x1 y1 x2 y2;...` or `no_box`) -> YOLO labels.

GlobalWheat2020.yaml downloads YOLOv5's converted labels, as YOLOv5 does; this converter is for the
official csv releases (GWHD 2021 on zenodo), whose images sit in one folder.
"""
from __future__ import annotations

import csv
from pathlib import Path

from utils.cli import UserValueError
from utils.converters.common import image_size, label_path, under, write_labels, xyxy_to_xywhn, yolo_row


def wheat_rows(path: Path, images: Path) -> dict[Path, list[str]]:
    """Label rows per label file of one csv; image sizes read from `images`."""
    out: dict[Path, list[str]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"image_name", "BoxesString"} <= set(reader.fieldnames or ()):
            raise UserValueError(f"{path}: expected a header with image_name and BoxesString, got {reader.fieldnames}")
        for r, row in enumerate(reader, 2):
            img = images / row["image_name"]
            W, H = image_size(img)
            lines = []
            boxes = row["BoxesString"].strip()
            for b in [] if boxes in ("", "no_box") else boxes.split(";"):
                try:
                    x1, y1, x2, y2 = (float(v) for v in b.split())
                except ValueError:
                    raise UserValueError(f"{path}: row {r}: box {b!r} is not 'x1 y1 x2 y2'") from None
                lines.append(yolo_row(0, xyxy_to_xywhn(x1, y1, x2, y2, W, H, clip=True), ".6f"))
            out[label_path(img)] = lines
    return out


def convert_wheat(root: Path, names: list[str], csvs: list[str], images: str = "images") -> None:
    """Each csv -> one label file per listed image (empty for `no_box`), beside `images`."""
    folder = under(root, images, "wheat converter")
    for rel in csvs:
        write_labels(wheat_rows(under(root, rel, "wheat converter"), folder))
