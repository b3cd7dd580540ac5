"""Label statistics picture (labels.jpg) and training-batch mosaics (train_batch0.jpg)."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from utils.annotate import colors, draw_boxes
from utils.boxes import xywh2xyxy


def plot_labels(labels: np.ndarray, names: list[str], fname: str | Path, kmeans_wh: np.ndarray | None = None) -> Path:
    """labels (n, 5) [cls, cx, cy, w, h] normalised -> instances per class, centres heat map, w/h and aspect."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = np.asarray(labels, dtype=np.float64).reshape(-1, 5)
    fig, ax = plt.subplots(2, 3, figsize=(15, 9), tight_layout=True)
    ax = ax.ravel()
    nc = len(names)
    counts = np.bincount(labels[:, 0].astype(int), minlength=nc)
    ax[0].bar(range(nc), counts, color=[np.array(colors(i, bgr=False)) / 255 for i in range(nc)])
    ax[0].set_ylabel("instances")
    if nc <= 30:
        ax[0].set_xticks(range(nc), names, rotation=90, fontsize=8)
    ax[1].hist2d(labels[:, 1], labels[:, 2], bins=50, range=[[0, 1], [0, 1]], cmap="Blues")
    ax[1].set(xlabel="x", ylabel="y", title="box centres")
    ax[2].hist2d(labels[:, 3], labels[:, 4], bins=50, range=[[0, 1], [0, 1]], cmap="Blues")
    ax[2].set(xlabel="width", ylabel="height")
    if kmeans_wh is not None:
        ax[2].scatter(kmeans_wh[:, 0], kmeans_wh[:, 1], c="r", marker="x", label="k-means")
        ax[2].legend()
    ax[3].hist(labels[:, 3], bins=50, range=(0, 1))
    ax[3].set(xlabel="width")
    ax[4].hist(labels[:, 4], bins=50, range=(0, 1))
    ax[4].set(xlabel="height")
    ar = labels[:, 3] / np.maximum(labels[:, 4], 1e-9)
    ax[5].hist(np.log2(np.clip(ar, 1 / 64, 64)), bins=50)
    ax[5].set(xlabel="log2 aspect ratio (w/h)")
    Path(fname).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(fname, dpi=100)
    plt.close(fig)
    return Path(fname)


def plot_images(imgs, targets, paths=None, fname: str | Path = "images.jpg", names: list[str] | None = None,
                max_size: int = 1920, max_subplots: int = 16, conf_thres: float = 0.25) -> Path:
    """Grid of (B,3,H,W) RGB uint8/float images with targets (n,6|7) [img, cls, cx, cy, w, h(, conf)] normalised."""
    imgs = imgs.cpu().numpy() if hasattr(imgs, "cpu") else np.asarray(imgs)
    targets = targets.cpu().numpy() if hasattr(targets, "cpu") else np.asarray(targets)
    if imgs.dtype != np.uint8:
        imgs = (imgs * 255 if imgs.max() <= 1 else imgs).clip(0, 255).astype(np.uint8)
    bs, _, h, w = imgs.shape
    bs = min(bs, max_subplots)
    ns = math.ceil(bs ** 0.5)
    scale = min(1.0, max_size / (ns * max(h, w)))
    th, tw = math.ceil(h * scale), math.ceil(w * scale)
    mosaic = np.full((ns * th, ns * tw, 3), 255, np.uint8)
    for i in range(bs):
        y, x = (i // ns) * th, (i % ns) * tw
        tile = cv2.resize(np.ascontiguousarray(imgs[i].transpose(1, 2, 0)[..., ::-1]), (tw, th))
        t = targets[targets[:, 0] == i]
        if t.shape[1] > 6:
            t = t[t[:, 6] > conf_thres]
        boxes = xywh2xyxy(t[:, 2:6].astype(np.float64)) * [tw, th, tw, th]
        cls = t[:, 1].astype(int)
        texts = [(names[c] if names and c < len(names) else str(c)) + (f" {r[6]:.1f}" if len(r) > 6 else "")
                 for c, r in zip(cls, t)]
        draw_boxes(tile, boxes, texts, [colors(c) for c in cls], line_width=1)
        if paths is not None:
            cv2.putText(tile, Path(paths[i]).name[:40], (3, 12), 0, 0.4, (220, 220, 220), 1, cv2.LINE_AA)
        mosaic[y:y + th, x:x + tw] = tile
        cv2.rectangle(mosaic, (x, y), (x + tw, y + th), (255, 255, 255), 2)
    Path(fname).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(fname), mosaic)
    return Path(fname)
