"""Image verification: decodable, big enough, EXIF orientation, truncated-JPEG repair."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
from PIL import Image

from utils.data.files import IMG_FORMATS

EXIF_ORIENTATION = 274
MIN_SIZE = 10


def exif_size(img: Image.Image) -> tuple[int, int]:
    """(w, h) of a PIL image after its EXIF rotation (orientations 5-8 swap the axes)."""
    w, h = img.size
    try:
        if img.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8):
            return h, w
    except Exception:  # malformed EXIF block: keep the stored size
        pass
    return w, h


def _jpeg_is_truncated(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(-2, os.SEEK_END)
        return f.read() != b"\xff\xd9"


def _repair_jpeg(path: str) -> str:
    """Re-encode a truncated JPEG in place (atomically); returns a warning message."""
    im = cv2.imread(path, cv2.IMREAD_COLOR)
    if im is None:
        raise ValueError("truncated JPEG that cannot be decoded")
    folder = os.path.dirname(path) or "."
    if not (os.access(folder, os.W_OK) and os.stat(folder).st_mode & 0o222):
        return "truncated JPEG (decodable; folder read-only, not repaired)"
    try:
        fd, tmp = tempfile.mkstemp(suffix=".jpg", dir=folder)
        os.close(fd)
        cv2.imwrite(tmp, im, [cv2.IMWRITE_JPEG_QUALITY, 100])
        os.replace(tmp, path)
    except OSError as e:
        return f"truncated JPEG (decodable, not repaired: {e.strerror})"
    return "truncated JPEG restored and saved"


def verify_image(path: str) -> tuple[tuple[int, int], str]:
    """Check one image; returns ((w, h) after EXIF, warning or ''). Raises ValueError with the reason."""
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            shape, fmt = exif_size(im), (im.format or "").lower()
    except Exception as e:
        raise ValueError(f"not a readable image ({type(e).__name__}: {e})") from e
    if fmt not in IMG_FORMATS:
        raise ValueError(f"unsupported image format '{fmt}'")
    if shape[0] < MIN_SIZE or shape[1] < MIN_SIZE:
        raise ValueError(f"image size {shape[0]}x{shape[1]} < {MIN_SIZE} pixels")
    msg = ""
    if fmt in ("jpeg", "jpg") and _jpeg_is_truncated(path):
        msg = _repair_jpeg(path)
    return shape, msg


def read_image(path: str | Path) -> "cv2.typing.MatLike":
    """Decode to BGR uint8 (EXIF rotation applied; grayscale, alpha and 16-bit converted)."""
    im = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if im is None:
        raise FileNotFoundError(f"image not found or not decodable: {path}")
    return im
