"""xView geojson -> YOLO labels and YOLOv5's 90/10 autosplit (YOLOv5's xView.yaml conversion)."""
from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from utils.cli import UserValueError
from utils.converters.common import (LOGGER, autosplit, image_size, label_path, under, write_labels, xyxy_to_xywhn,
                                     yolo_row)

# xView type ids 11..94 -> 0..59 (-1: not a detection class)
XVIEW_CLASS2INDEX = (
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 2, -1, 3, -1, 4, 5, 6, 7, 8, -1, 9, 10, 11, 12, 13, 14,
    15, -1, -1, 16, 17, 18, 19, 20, 21, 22, -1, 23, 24, 25, -1, 26, 27, -1, 28, -1, 29, 30, 31, 32, 33, 34,
    35, 36, 37, -1, 38, 39, 40, 41, 42, 43, 44, 45, -1, -1, -1, -1, 46, 47, 48, 49, -1, 50, 51, -1, 52, -1,
    -1, -1, 53, 54, -1, 55, -1, -1, 56, -1, 57, -1, 58, 59)


def xview_rows(geojson: Path, images: Path, labels: Path) -> tuple[dict[Path, list[str]], int]:
    """Label rows per file from the features' bounds_imcoords and type_id (boxes clipped to the image);
    features of missing images or unmapped types are skipped (counted)."""
    try:
        features = json.loads(geojson.read_text())["features"]
    except (json.JSONDecodeError, KeyError) as e:
        raise UserValueError(f"{geojson}: not an xView geojson with 'features' ({e!r})") from None
    rows: dict[Path, list[str]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    skipped = 0
    for k, feat in enumerate(tqdm(features, desc=f"converting {geojson.name}")):
        p = feat.get("properties", {})
        if not p.get("bounds_imcoords"):
            continue
        file = images / p["image_id"]
        box = [int(v) for v in str(p["bounds_imcoords"]).split(",")]
        t = int(p["type_id"])
        cls = XVIEW_CLASS2INDEX[t] if 0 <= t < len(XVIEW_CLASS2INDEX) else -1
        if not file.exists() or len(box) != 4 or cls < 0:
            skipped += 1
            continue
        if p["image_id"] not in sizes:
            sizes[p["image_id"]] = image_size(file)
        W, H = sizes[p["image_id"]]
        rows.setdefault(labels / f"{Path(p['image_id']).stem}.txt", []).append(
            yolo_row(cls, xyxy_to_xywhn(*map(float, box), W, H, clip=True), ".6f"))
    return rows, skipped


def convert_xview(root: Path, names: list[str], geojson: str = "xView_train.geojson", images: str = "images/train",
                  split: list[float] | None = None) -> None:
    """xView_train.geojson -> labels beside `images`, then YOLOv5's autosplit (seed 0) of `images`."""
    img_dir = under(root, images, "xview converter")
    labels = label_path(img_dir / "x.tif").parent
    rows, skipped = xview_rows(under(root, geojson, "xview converter"), img_dir, labels)
    write_labels(rows)
    if skipped:
        LOGGER.warning(f"WARNING: {geojson}: {skipped} features skipped (image missing, bad box or unmapped type)")
    autosplit(img_dir, tuple(split or (0.9, 0.1, 0.0)))
