"""Shared pieces of the label converters: YOLO rows, box maths, label files, image sizes, autosplit."""
from __future__ import annotations

import logging
import random
from pathlib import Path

from utils.cli import UserFileNotFoundError
from utils.data.files import IMG_FORMATS, img2label_paths

LOGGER = logging.getLogger("yolo")


def yolo_row(cls: int, box: tuple[float, float, float, float], fmt: str = "g") -> str:
    """`cls cx cy w h`, each value formatted with `fmt` ('g': 6 significant digits as coco128, '.5f', ...)
    or 'str' (Python's shortest round-trip repr, as YOLOv5's VOC and Argoverse scripts write)."""
    return f"{cls} " + " ".join(str(float(v)) if fmt == "str" else format(v, fmt) for v in box)


def xyxy_to_xywhn(x1: float, y1: float, x2: float, y2: float, w: float, h: float,
                  clip: bool = False) -> tuple[float, float, float, float]:
    """Pixel corners -> normalised centre and size; `clip` first clips the corners to the image."""
    if clip:
        x1, x2 = min(max(x1, 0.0), w), min(max(x2, 0.0), w)
        y1, y2 = min(max(y1, 0.0), h), min(max(y2, 0.0), h)
    return (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h


def write_labels(rows: dict[Path, list[str]]) -> int:
    """Write each label file (one row a line, folders made); returns the number of files written."""
    for path, lines in rows.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{ln}\n" for ln in lines))
    return len(rows)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header."""
    from PIL import Image
    with Image.open(path) as im:
        return im.size


def label_path(image: Path) -> Path:
    """The YOLO label file of an image (last /images/ -> /labels/, suffix .txt)."""
    return Path(img2label_paths([str(image)])[0])


def under(root: Path, rel: str, what: str) -> Path:
    """`root / rel`, which must exist (error naming the converter argument)."""
    p = root / rel
    if not p.exists():
        raise UserFileNotFoundError(f"{what}: {p} does not exist")
    return p


def autosplit(images: Path, weights: tuple[float, float, float] = (0.9, 0.1, 0.0)) -> list[Path]:
    """YOLOv5's autosplit: seed 0, each image drawn into autosplit_{train,val,test}.txt next to `images`."""
    files = sorted(x for x in images.rglob("*.*") if x.suffix[1:].lower() in IMG_FORMATS)
    rng = random.Random(0)
    picks = rng.choices([0, 1, 2], weights=weights, k=len(files))
    names = ("autosplit_train.txt", "autosplit_val.txt", "autosplit_test.txt")
    lines: list[list[str]] = [[], [], []]
    for i, f in zip(picks, files):
        lines[i].append(f"./{f.relative_to(images.parent).as_posix()}\n")
    out = []
    for name, ls in zip(names, lines):
        p = images.parent / name
        p.unlink(missing_ok=True)
        if ls:
            p.write_text("".join(ls))
            out.append(p)
    return out
