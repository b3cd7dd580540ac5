"""Fast image decoding for the training loader: JPEGs through libjpeg-turbo (simplejpeg) straight into BGR, EXIF
orientation applied as OpenCV applies it, and an optional reduced-size decode (libjpeg's DCT scaling by 1/2, 1/4 or
1/8) when an image is at least 4x the size it will be resized to, to no less than twice that size. Anything else (PNG, CMYK JPEGs, simplejpeg
absent, a file simplejpeg rejects) goes through utils/image_check.read_image (OpenCV).

Pixels: a full decode equals cv2.imread exactly (all 128 coco128 images, and EXIF orientations 1-8 in
tests/test_image_decode.py). A reduced decode differs from full decode + the same resize by libjpeg's DCT-domain
downscaling before the resize: after the loader's linear resize, 0.8-5.0 grey levels on average on six
2.5x-upscaled coco128 images at target 320, less than linear vs area resizing of the full image (1.3-8.8). The
decoded image stays at least twice the target because a DCT scale straight to the target (the first rule here)
blurred and rang at small shapes' edges: the README's demo quick start (256 px images, 128 px training) ended at
mAP50 0.81 / 0.91 (seeds 0 / 1) with a class loss 1.3-3x higher, against 0.96 / 0.97 at full size. The training
loader uses it; validation decodes at full size (its figures reproduce the official ones exactly).
"""
from __future__ import annotations

import math
import struct
from pathlib import Path

import cv2
import numpy as np

from utils.data.image_check import read_image

ORIENTATION_TAG = 0x0112
JPEG_SOI = b"\xff\xd8"


def jpeg_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) of JPEG bytes; 1 when there is none or the EXIF block is malformed."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker, size = data[pos + 1], struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker == 0xDA:  # start of scan: no more metadata
            break
        if marker == 0xE1 and data[pos + 4:pos + 10] == b"Exif\0\0":
            return _tiff_orientation(data[pos + 10:pos + 2 + size])
        pos += 2 + size
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    end = "<" if tiff[:2] == b"II" else ">"
    ifd = struct.unpack(end + "I", tiff[4:8])[0]
    if ifd + 2 > len(tiff):
        return 1
    for k in range(struct.unpack(end + "H", tiff[ifd:ifd + 2])[0]):
        entry = tiff[ifd + 2 + 12 * k:ifd + 14 + 12 * k]
        if len(entry) < 12:
            break
        if struct.unpack(end + "H", entry[:2])[0] == ORIENTATION_TAG:
            value = struct.unpack(end + "H", entry[8:10])[0]
            return value if 1 <= value <= 8 else 1
    return 1


def apply_orientation(im: np.ndarray, orientation: int) -> np.ndarray:
    """The image as displayed: EXIF orientation 2-8 undone (flips and quarter turns, as OpenCV and PIL do)."""
    if orientation == 2:
        return cv2.flip(im, 1)
    if orientation == 3:
        return cv2.rotate(im, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(im, 0)
    if orientation == 5:
        return cv2.transpose(im)
    if orientation == 6:
        return cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(im), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return im


def reduced_min_size(h: int, w: int, target: int | None) -> tuple[int, int]:
    """(min_height, min_width) for simplejpeg: the long side kept >= 2 x target, so the loader's resize still
    averages at least 2 x 2 decoded pixels; (0, 0) (full size) unless the image is at least 4x the target."""
    long = max(h, w)
    if not target or long < 4 * target:
        return 0, 0
    return math.ceil(h * 2 * target / long), math.ceil(w * 2 * target / long)


def decode_image(path: str | Path, target: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """(BGR uint8 image, its full-size (h0, w0) after EXIF orientation). With `target` (the long side it will be
    resized to), a JPEG at least 4x that size comes out reduced by 1/2, 1/4 or 1/8, its long side >= 2 x target."""
    try:
        import simplejpeg
    except ImportError:
        simplejpeg = None
    with open(path, "rb") as f:
        data = f.read()
    if simplejpeg is not None and data[:2] == JPEG_SOI:
        try:
            h, w, colorspace, _ = simplejpeg.decode_jpeg_header(data)
            if colorspace in ("Gray", "YCbCr", "RGB"):
                min_h, min_w = reduced_min_size(h, w, target)
                im = simplejpeg.decode_jpeg(data, colorspace="BGR", min_height=min_h, min_width=min_w)
                orientation = jpeg_orientation(data)
                hw = (w, h) if orientation >= 5 else (h, w)
                return apply_orientation(im, orientation), hw
        except ValueError:  # simplejpeg's error for data libjpeg-turbo rejects: OpenCV may still decode it
            pass
    im = read_image(path)
    return im, im.shape[:2]
