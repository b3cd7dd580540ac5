"""Argoverse-HD json -> YOLO labels (YOLOv5's Argoverse.yaml conversion)."""
from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from utils.cli import UserValueError
from utils.converters.common import under, write_labels, yolo_row


def convert_argoverse(root: Path, names: list[str], annotations: list[str], labels: str = "Argoverse-1.1/labels",
                      width: int = 1920, height: int = 1200) -> None:
    """Each annotation json (images indexed by id, `seq_dirs` by sid, bbox x y w h in pixels of a fixed
    `width` x `height` frame) -> `labels`/<seq_dir>/<image>.txt, class = category_id."""
    out = root / labels
    for rel in annotations:
        f = under(root, rel, "argoverse converter")
        try:
            a = json.loads(f.read_text())
            images, seq_dirs = a["images"], a["seq_dirs"]
        except (json.JSONDecodeError, KeyError) as e:
            raise UserValueError(f"{f}: not an Argoverse-HD annotation json ({e!r})") from None
        rows: dict[Path, list[str]] = {}
        for k, ann in enumerate(tqdm(a["annotations"], desc=f"converting {rel}")):
            cls = int(ann["category_id"])
            if not 0 <= cls < len(names):
                raise UserValueError(f"{f}: annotation {k}: category_id {cls} outside 0..{len(names) - 1}")
            im = images[ann["image_id"]]
            x, y, w, h = ann["bbox"]
            box = (x + w / 2) / width, (y + h / 2) / height, w / width, h / height
            rows.setdefault(out / seq_dirs[im["sid"]] / f"{Path(im['name']).stem}.txt", []).append(
                yolo_row(cls, box, "str"))
        write_labels(rows)
