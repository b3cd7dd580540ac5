"""Mosaic labels against pixels: solid boxes of distinct colours, mosaicked, found again from their labels."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from utils.data import mosaic as mosaic_mod
from utils.boxes import xywhn2xyxy
from utils.data.dataloaders import LoadImagesAndLabels
from utils.hyp import HYP_KEYS
from utils.data.mosaic import mosaic4

S = 96  # mosaic tile size (canvas 2S x 2S before the crop back to S x S)
# image (h, w) and its two boxes as integer pixel (x1, y1, x2, y2); boxes never touch each other
BOXES = {
    (96, 96): [(8, 10, 40, 44), (56, 60, 90, 88)],
    (64, 96): [(4, 6, 30, 40), (50, 20, 92, 58)],
    (96, 72): [(10, 4, 60, 30), (20, 50, 50, 90)],
    (80, 96): [(30, 8, 70, 36), (6, 46, 44, 76)],
}
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255), (40, 40, 40),
           (200, 120, 0)]  # one per class; none is the mosaic fill 114 nor the image background 0


def _images() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Black images with solid boxes (class k drawn in COLOURS[k]) and their normalised labels."""
    ims, labels = [], []
    for n, ((h, w), boxes) in enumerate(BOXES.items()):
        im = np.zeros((h, w, 3), np.uint8)
        rows = []
        for j, (x1, y1, x2, y2) in enumerate(boxes):
            k = 2 * n + j
            im[y1:y2, x1:x2] = COLOURS[k]
            rows.append([k, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h])
        ims.append(im)
        labels.append(np.array(rows, np.float32))
    return ims, labels


def check_labels_on_pixels(im: np.ndarray, labels_xyxy: np.ndarray, tol: int = 1) -> int:
    """Each labelled box, shrunk by `tol` px, is solid in its class colour, and the ring `tol` px outside it
    holds none of that colour; returns the number of boxes checked. Raises AssertionError otherwise."""
    h, w = im.shape[:2]
    checked = 0
    for k, x1, y1, x2, y2 in labels_xyxy:
        colour = np.array(COLOURS[int(k)], np.uint8)
        x1, y1, x2, y2 = (int(round(v)) for v in (x1, y1, x2, y2))
        if x2 - x1 <= 2 * tol + 1 or y2 - y1 <= 2 * tol + 1:
            continue  # cut down to a sliver by the canvas edge
        inside = im[y1 + tol:y2 - tol, x1 + tol:x2 - tol]
        assert (inside == colour).all(), f"class {int(k)} box {x1, y1, x2, y2}: pixels inside are not its colour"
        ring = np.zeros((h, w), bool)
        ring[max(y1 - tol - 1, 0):y2 + tol + 1, max(x1 - tol - 1, 0):x2 + tol + 1] = True
        ring[max(y1 - tol, 0):y2 + tol, max(x1 - tol, 0):x2 + tol] = False
        assert not (im[ring] == colour).all(-1).any(), f"class {int(k)} box {x1, y1, x2, y2}: colour outside it"
        checked += 1
    return checked


def _shifted_mosaic4(images, labels, s, rng):
    """The broken variant: every mosaic label 12 px right and down of its object."""
    im, lab = mosaic4(images, labels, s, rng)
    lab[:, 1:] += 12
    return im, lab


@pytest.mark.parametrize("seed", range(6))
def test_mosaic4_labels_cover_their_pixels(seed):
    ims, labels = _images()
    rng = np.random.default_rng(seed)
    order = rng.permutation(4)
    canvas, lab = mosaic4([ims[i] for i in order], [labels[i] for i in order], S, rng)
    assert canvas.shape == (2 * S, 2 * S, 3) and lab.shape == (8, 5)
    assert check_labels_on_pixels(canvas, lab) >= 4


def test_shifted_mosaic_labels_are_rejected():
    ims, labels = _images()
    canvas, lab = _shifted_mosaic4(ims, labels, S, np.random.default_rng(0))
    with pytest.raises(AssertionError):
        check_labels_on_pixels(canvas, lab)


def _write_dataset(root: Path) -> Path:
    """The four images as PNG (lossless) with YOLO label files."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    ims, labels = _images()
    for n, (im, lb) in enumerate(zip(ims, labels)):
        assert cv2.imwrite(str(root / "images" / f"im{n}.png"), im[..., ::-1])  # RGB colours -> BGR file
        (root / "labels" / f"im{n}.txt").write_text("".join("%d %.9f %.9f %.9f %.9f\n" % tuple(r) for r in lb))
    return root / "images"


def _dataset_samples(root: Path, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """LoadImagesAndLabels with mosaic always on and every other gain 0: (RGB HWC image, pixel xyxy labels)."""
    hyp = {k: 0.0 for k in HYP_KEYS} | {"mosaic": 1.0}
    ds = LoadImagesAndLabels(root, img_size=S, augment=True, hyp=hyp)
    out = []
    for i in range(n):
        im, t, _, shapes = ds[i % len(ds)]
        assert shapes is None and im.shape == (3, S, S)  # a mosaic, cropped back to S x S
        rgb = np.ascontiguousarray(im.numpy().transpose(1, 2, 0))
        xyxy = xywhn2xyxy(t[:, 2:6].numpy().astype(np.float64), S, S)
        out.append((rgb, np.hstack([t[:, 1:2].numpy(), xyxy])))
    return out


def test_dataset_mosaic_labels_cover_their_pixels(tmp_path):
    """The whole path: load_mosaic, the random_perspective crop, xyxy2xywhn, the tensor the loader yields."""
    samples = _dataset_samples(_write_dataset(tmp_path), 8)
    assert sum(check_labels_on_pixels(im, lab) for im, lab in samples) >= 16


def test_dataset_with_shifted_mosaic_is_rejected(tmp_path, monkeypatch):
    root = _write_dataset(tmp_path)
    monkeypatch.setattr("utils.data.dataloaders.mosaic4", _shifted_mosaic4)
    samples = _dataset_samples(root, 8)
    with pytest.raises(AssertionError):
        for im, lab in samples:
            check_labels_on_pixels(im, lab)
    assert mosaic_mod.mosaic4 is mosaic4  # only the loader's reference was broken


@pytest.mark.parametrize("s", [64, 320])
def test_canvas_is_the_tiles_on_a_114_fill(s):
    """Padding only the strips no tile covers gives the full-fill canvas exactly (tiles smaller and larger than s)."""
    rng = np.random.default_rng(s)
    for _ in range(60):
        ims = [rng.integers(0, 256, (int(rng.integers(1, 2 * s)), int(rng.integers(1, 2 * s)), 3), dtype=np.uint8)
               for _ in range(4)]
        seed = int(rng.integers(1 << 30))
        got, _ = mosaic4(ims, [np.zeros((0, 5), np.float32)] * 4, s, np.random.default_rng(seed))
        centre = np.random.default_rng(seed)
        yc, xc = (int(centre.uniform(s // 2, 2 * s - s // 2)) for _ in range(2))
        want = np.full((2 * s, 2 * s, 3), 114, np.uint8)
        for i, im in enumerate(ims):
            (x1a, y1a, x2a, y2a), (x1b, y1b, x2b, y2b) = mosaic_mod._placement(i, xc, yc, *im.shape[1::-1], s)
            want[y1a:y2a, x1a:x2a] = im[y1b:y2b, x1b:x2b]
        assert np.array_equal(got, want)
