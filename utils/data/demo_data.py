"""Embedded demo dataset: deterministic synthetic shapes on textured backgrounds (YOLO format).

`make_shapes_dataset(root)` writes `images/{train,val}/*.jpg` and `labels/{train,val}/*.txt`;
`data/shapes.yaml` (key `generate: shapes`) points at it and utils/data/data_yaml.py calls
`ensure_shapes_dataset` so the folder is generated on first use.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

NAMES = ("circle", "square", "triangle", "cross")
COLORS_BGR = ((40, 40, 220), (40, 190, 40), (220, 90, 30), (30, 210, 230))  # red, green, blue, yellow
DONE_MARKER = ".complete"


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Muted low-frequency colour texture plus fine noise and a few faint lines."""
    base = rng.integers(70, 170, (4, 4, 3)).astype(np.uint8)
    im = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
    im = cv2.addWeighted(im, 0.6, np.full_like(im, 120), 0.4, 0)  # pull towards grey: objects stay salient
    noise = rng.normal(0, 8, (size, size, 3))
    im = np.clip(im + noise, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 6))):
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        c = tuple(int(v) for v in rng.integers(60, 190, 3))
        cv2.line(im, (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1])), c, int(rng.integers(1, 3)), cv2.LINE_AA)
    return im


def _draw(im: np.ndarray, cls: int, box: np.ndarray, color: tuple[int, int, int]) -> None:
    x1, y1, x2, y2 = (int(v) for v in box)
    if cls == 0:
        cv2.ellipse(im, ((x1 + x2) // 2, (y1 + y2) // 2), ((x2 - x1) // 2, (y2 - y1) // 2), 0, 0, 360, color, -1,
                    cv2.LINE_AA)
    elif cls == 1:
        cv2.rectangle(im, (x1, y1), (x2, y2), color, -1)
    elif cls == 2:
        pts = np.array([[x1, y2], [x2, y2], [(x1 + x2) // 2, y1]], np.int32)
        cv2.fillPoly(im, [pts], color, cv2.LINE_AA)
    else:
        tw, th = max(2, (x2 - x1) // 3), max(2, (y2 - y1) // 3)
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        cv2.rectangle(im, (cx - tw // 2, y1), (cx + tw // 2, y2), color, -1)
        cv2.rectangle(im, (x1, cy - th // 2), (x2, cy + th // 2), color, -1)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _sample_boxes(rng: np.random.Generator, size: int, n: int) -> list[np.ndarray]:
    """Up to n boxes, 15-50% of the side, aspect 0.7-1.4, overlapping each other by IoU < 0.05."""
    boxes: list[np.ndarray] = []
    for _ in range(n * 20):
        if len(boxes) == n:
            break
        s = rng.uniform(0.15, 0.5) * size
        ar = rng.uniform(0.7, 1.4)
        w, h = min(s * ar, 0.6 * size), min(s / ar, 0.6 * size)
        x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        b = np.round([x1, y1, x1 + w, y1 + h])
        if all(_iou(b, o) < 0.05 for o in boxes):
            boxes.append(b)
    return boxes


def make_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One image (BGR) and its labels (n, 5) [cls, cx, cy, w, h] normalised."""
    im = _background(rng, size)
    rows = []
    for box in _sample_boxes(rng, size, int(rng.integers(1, 4))):
        cls = int(rng.integers(len(NAMES)))
        color = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in COLORS_BGR[cls])
        _draw(im, cls, box, color)
        x1, y1, x2, y2 = box
        rows.append([cls, (x1 + x2) / 2 / size, (y1 + y2) / 2 / size, (x2 - x1) / size, (y2 - y1) / size])
    return im, np.array(rows, np.float64).reshape(-1, 5)


def _write_split(root: Path, split: str, n: int, size: int, rng: np.random.Generator) -> None:
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(n), desc=f"shapes {split}", leave=False):
        im, lb = make_sample(rng, size)
        cv2.imwrite(str(root / "images" / split / f"{i:05d}.jpg"), im, [cv2.IMWRITE_JPEG_QUALITY, 95])
        lines = [f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}" for r in lb]
        (root / "labels" / split / f"{i:05d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))


def make_shapes_dataset(root: str | Path, n_train: int = 400, n_val: int = 80, imgsz: int = 256,
                        seed: int = 0) -> Path:
    """Write the demo dataset under root (deterministic for a given seed); returns root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    _write_split(root, "train", n_train, imgsz, rng)
    _write_split(root, "val", n_val, imgsz, rng)
    (root / DONE_MARKER).write_text(f"n_train={n_train} n_val={n_val} imgsz={imgsz} seed={seed}\n")
    return root


def ensure_shapes_dataset(root: str | Path, **kwargs) -> Path:
    """Generate the demo dataset at root unless a complete copy is there (built in a temp dir, then moved; two
    processes doing it at once on one disk, e.g. two nodes' local rank 0 on shared storage, both succeed)."""
    root = Path(root)
    if (root / DONE_MARKER).exists():
        return root
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists but is not a complete shapes dataset (no {DONE_MARKER}); remove it")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".shapes-", dir=root.parent))
    try:
        make_shapes_dataset(tmp, **kwargs)
        if (root / DONE_MARKER).exists():  # another node sharing this disk finished first: keep its copy
            return root
        try:
            if root.exists():
                root.rmdir()
            os.replace(tmp, root)
        except OSError:
            if not (root / DONE_MARKER).exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
