"""Image augmentations for detection: letterbox, random perspective, HSV gain, flips, mixup.

Boxes handed to these functions are pixel `[cls, x1, y1, x2, y2]` rows unless stated otherwise.
Randomness comes from an explicit `numpy.random.Generator` so a worker can be seeded.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

PAD_COLOR = (114, 114, 114)


def letterbox(im: np.ndarray, new_shape: int | tuple[int, int] = 640, color: tuple[int, int, int] = PAD_COLOR,
              auto: bool = True, scaleFill: bool = False, scaleup: bool = True, stride: int = 32,
              ) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """Resize keeping the aspect ratio and pad to `new_shape` (h, w); returns (image, (rw, rh), (dw, dh)).

    `auto` pads only up to the next multiple of `stride`; `scaleFill` stretches with no padding;
    `scaleup=False` never enlarges. dw/dh are per-side paddings (may end in .5: the borders are
    round(d - 0.1) before and round(d + 0.1) after, as YOLOv5 does).
    """
    h0, w0 = im.shape[:2]
    if isinstance(new_shape, int):
        new_shape = (new_shape, new_shape)
    r = min(new_shape[0] / h0, new_shape[1] / w0)
    if not scaleup:
        r = min(r, 1.0)
    ratio = (r, r)
    new_w, new_h = int(round(w0 * r)), int(round(h0 * r))
    dw, dh = new_shape[1] - new_w, new_shape[0] - new_h
    if auto:
        dw, dh = dw % stride, dh % stride
    elif scaleFill:
        dw, dh = 0, 0
        new_w, new_h = new_shape[1], new_shape[0]
        ratio = (new_shape[1] / w0, new_shape[0] / h0)
    dw, dh = dw / 2, dh / 2
    if (w0, h0) != (new_w, new_h):
        im = cv2.resize(im, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    if top or bottom or left or right:
        im = cv2.copyMakeBorder(im, top, bottom, left, right, cv2.BORDER_CONSTANT, value=color)
    return im, ratio, (float(dw), float(dh))


def augment_hsv(im: np.ndarray, rng: np.random.Generator, hgain: float = 0.5, sgain: float = 0.5,
                vgain: float = 0.5) -> None:
    """Random hue/saturation/value gains applied in place to a BGR uint8 image via lookup tables."""
    if not (hgain or sgain or vgain):
        return
    g = rng.uniform(-1, 1, 3) * (hgain, sgain, vgain) + 1
    hsv = cv2.cvtColor(im, cv2.COLOR_BGR2HSV)
    x = np.arange(256, dtype=np.float64)
    lut = np.stack(((x * g[0]) % 180, np.clip(x * g[1], 0, 255), np.clip(x * g[2], 0, 255)), 1).astype(np.uint8)
    cv2.LUT(hsv, lut.reshape(256, 1, 3), dst=hsv)  # one table per channel in one pass: no split / merge copies
    cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR, dst=im)


def box_candidates(box1: np.ndarray, box2: np.ndarray, wh_thr: float = 2, ar_thr: float = 100,
                   area_thr: float = 0.1, eps: float = 1e-16) -> np.ndarray:
    """Keep boxes (4, n) that stay > wh_thr px, keep > area_thr of their area and aspect < ar_thr."""
    w1, h1 = box1[2] - box1[0], box1[3] - box1[1]
    w2, h2 = box2[2] - box2[0], box2[3] - box2[1]
    ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (ar < ar_thr)


def _perspective_matrix(shape_hw: tuple[int, int], out_wh: tuple[int, int], rng: np.random.Generator,
                        degrees: float, translate: float, scale: float, shear: float,
                        perspective: float) -> tuple[np.ndarray, float]:
    """Compose centre -> perspective -> rotate/scale -> shear -> translate; returns (M, scale)."""
    C = np.eye(3)
    C[0, 2], C[1, 2] = -shape_hw[1] / 2, -shape_hw[0] / 2
    P = np.eye(3)
    P[2, 0], P[2, 1] = rng.uniform(-perspective, perspective), rng.uniform(-perspective, perspective)
    R = np.eye(3)
    s = rng.uniform(1 - scale, 1 + scale)
    R[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=rng.uniform(-degrees, degrees), scale=s)
    S = np.eye(3)
    S[0, 1] = math.tan(rng.uniform(-shear, shear) * math.pi / 180)
    S[1, 0] = math.tan(rng.uniform(-shear, shear) * math.pi / 180)
    T = np.eye(3)
    T[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_wh[0]
    T[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_wh[1]
    return T @ S @ R @ P @ C, s


def transform_boxes(boxes: np.ndarray, M: np.ndarray, perspective: bool) -> np.ndarray:
    """Map xyxy boxes (n, 4) through the 3x3 matrix M; returns the enclosing xyxy boxes."""
    n = len(boxes)
    pts = np.ones((n * 4, 3))
    pts[:, :2] = boxes[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(n * 4, 2)  # 4 corners per box
    pts = pts @ M.T
    pts = (pts[:, :2] / pts[:, 2:3] if perspective else pts[:, :2]).reshape(n, 8)
    x, y = pts[:, [0, 2, 4, 6]], pts[:, [1, 3, 5, 7]]
    return np.stack((x.min(1), y.min(1), x.max(1), y.max(1)), 1)


def random_perspective(im: np.ndarray, targets: np.ndarray, rng: np.random.Generator, degrees: float = 10,
                       translate: float = 0.1, scale: float = 0.1, shear: float = 10, perspective: float = 0.0,
                       border: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Random affine/perspective warp of an image and its `[cls, x1, y1, x2, y2]` targets.

    `border` (negative for mosaic) shrinks the output by 2*border per axis. Boxes are clipped to
    the output and those that became too small or too thin are dropped (box_candidates).
    """
    height, width = im.shape[0] + border[0] * 2, im.shape[1] + border[1] * 2
    M, s = _perspective_matrix(im.shape[:2], (width, height), rng, degrees, translate, scale, shear, perspective)
    if border[0] or border[1] or (M != np.eye(3)).any():
        if perspective:
            im = cv2.warpPerspective(im, M, dsize=(width, height), borderValue=PAD_COLOR)
        else:
            im = cv2.warpAffine(im, M[:2], dsize=(width, height), borderValue=PAD_COLOR)
    if len(targets):
        new = transform_boxes(targets[:, 1:5], M, bool(perspective))
        new[:, [0, 2]] = new[:, [0, 2]].clip(0, width)
        new[:, [1, 3]] = new[:, [1, 3]].clip(0, height)
        keep = box_candidates(targets[:, 1:5].T * s, new.T, area_thr=0.10)
        targets = targets[keep]
        targets[:, 1:5] = new[keep]
    return im, targets


def mixup(im: np.ndarray, labels: np.ndarray, im2: np.ndarray, labels2: np.ndarray,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blend two equally sized images with a Beta(32, 32) ratio and concatenate their labels."""
    r = rng.beta(32.0, 32.0)
    im = (im * r + im2 * (1 - r)).astype(np.uint8)
    return im, np.concatenate((labels, labels2), 0)


def flip_lr(im: np.ndarray, labels_xywhn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right; labels are normalised `[cls, cx, cy, w, h]` (modified copy returned).

    The image comes back as a view (negative strides, no copy): the loader makes one contiguous copy at the end."""
    labels_xywhn = labels_xywhn.copy()
    if len(labels_xywhn):
        labels_xywhn[:, 1] = 1 - labels_xywhn[:, 1]
    return np.fliplr(im), labels_xywhn


def flip_ud(im: np.ndarray, labels_xywhn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror up-down; labels are normalised `[cls, cx, cy, w, h]` (modified copy returned); the image is a view."""
    labels_xywhn = labels_xywhn.copy()
    if len(labels_xywhn):
        labels_xywhn[:, 2] = 1 - labels_xywhn[:, 2]
    return np.flipud(im), labels_xywhn
