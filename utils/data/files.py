"""Image and label files of a dataset: which files are images, where each image's label file is."""
from __future__ import annotations

import os
from pathlib import Path

from utils.cli import UserFileNotFoundError

IMG_FORMATS = ("bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm")


def img2label_paths(img_paths: list[str]) -> list[str]:
    """Label path of each image: the last `/images/` becomes `/labels/`, the suffix becomes `.txt`."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return [sb.join(str(p).rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt" for p in img_paths]


def list_image_files(sources: str | Path | list) -> list[str]:
    """All image files of a folder (recursive), a .txt list of images, or a list of those; sorted."""
    files: list[str] = []
    for src in sources if isinstance(sources, (list, tuple)) else [sources]:
        p = Path(src)
        if p.is_dir():
            files += [str(f) for f in p.rglob("*") if f.suffix[1:].lower() in IMG_FORMATS]
        elif p.is_file() and p.suffix == ".txt":
            with open(p, encoding="utf-8") as f:
                lines = [ln.strip() for ln in f if ln.strip()]
            files += [str(ln if Path(ln).is_absolute() else (p.parent / ln).resolve()) for ln in lines]
        elif p.is_file():
            files.append(str(p))
        else:
            raise UserFileNotFoundError(f"image source does not exist: {p}")
    files = sorted(f for f in files if f.rsplit(".", 1)[-1].lower() in IMG_FORMATS)
    if not files:
        raise UserFileNotFoundError(f"no images found in {sources} (formats: {', '.join(IMG_FORMATS)})")
    return files
