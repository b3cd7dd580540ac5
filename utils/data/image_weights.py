"""--image-weights (YOLOv5): draw each epoch's images with probability ~ the summed weights of their labels' classes.

Class weights are the inverse class frequencies of the training labels (normalised to sum 1), times
(1 - mAP of the class)^2 from the last validation, so rare and poorly detected classes are seen more often.
An image without labels has weight 0 and is not drawn (as in YOLOv5).
"""
from __future__ import annotations

import random

import numpy as np


def class_weights(labels: list[np.ndarray], nc: int) -> np.ndarray:
    """Inverse frequency of each class over all label rows (absent classes count once), normalised to sum 1."""
    rows = [lb for lb in labels if len(lb)]
    if not rows:
        return np.full(nc, 1 / nc)
    counts = np.bincount(np.concatenate(rows, 0)[:, 0].astype(int), minlength=nc).astype(float)
    counts[counts == 0] = 1
    w = 1 / counts
    return w / w.sum()


def image_weights(labels: list[np.ndarray], nc: int, cw: np.ndarray) -> np.ndarray:
    """Per image: the sum over its label rows of their class weight."""
    counts = np.array([np.bincount(lb[:, 0].astype(int), minlength=nc) if len(lb) else np.zeros(nc)
                       for lb in labels])
    return (counts * cw.reshape(1, nc)).sum(1)


def draw_indices(labels: list[np.ndarray], nc: int, maps: np.ndarray | None = None,
                 rng: random.Random | None = None) -> list[int]:
    """len(labels) image indices drawn with replacement by image weight (YOLOv5's random.choices)."""
    cw = class_weights(labels, nc) * nc
    if maps is not None:
        cw = cw * (1 - np.asarray(maps, dtype=float)) ** 2 / nc
    iw = image_weights(labels, nc, cw)
    rng = rng or random
    n = len(labels)
    return rng.choices(range(n), weights=iw if iw.sum() > 0 else None, k=n)
