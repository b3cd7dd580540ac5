"""VisDrone2019-DET txt -> YOLO labels (YOLOv5's VisDrone.yaml conversion)."""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from utils.cli import UserValueError
from utils.converters.common import LOGGER, image_size, under, write_labels, yolo_row


def visdrone_rows(ann: Path, img_wh: tuple[int, int], nc: int) -> tuple[list[str], int]:
    """YOLO rows of one annotation file (`x,y,w,h,score,category,truncation,occlusion`); score 0 rows
    (ignored regions) skipped, class = category - 1; returns rows and the count of out-of-range classes."""
    W, H = img_wh
    lines, dropped = [], 0
    for r, line in enumerate(ann.read_text().strip().splitlines(), 1):
        row = line.strip().rstrip(",").split(",")
        if len(row) < 6:
            raise UserValueError(f"{ann}: row {r} has {len(row)} fields, expected 8")
        if row[4].strip() == "0":
            continue
        cls = int(row[5]) - 1
        if not 0 <= cls < nc:  # category 11 'others': YOLOv5 writes it, and then no loader can use the file
            dropped += 1
            continue
        x, y, w, h = (int(v) for v in row[:4])
        lines.append(yolo_row(cls, ((x + w / 2) / W, (y + h / 2) / H, w / W, h / H), ".6f"))
    return lines, dropped


def convert_visdrone(root: Path, names: list[str], dirs: list[str]) -> None:
    """Each VisDrone folder's annotations/*.txt -> labels/*.txt (image sizes from images/*.jpg)."""
    for d in dirs:
        base = under(root, d, "visdrone converter")
        rows, dropped = {}, 0
        for ann in tqdm(sorted(under(base, "annotations", "visdrone converter").glob("*.txt")), desc=f"converting {d}"):
            lines, n = visdrone_rows(ann, image_size(base / "images" / f"{ann.stem}.jpg"), len(names))
            dropped += n
            if lines:
                rows[base / "labels" / ann.name] = lines
        write_labels(rows)
        if dropped:
            LOGGER.warning(f"WARNING: {d}: {dropped} boxes of category 11 ('others', not in the 10 names) left out")
