"""Dataset analysis: instances per class, box size/aspect histograms, centre heat map, k-means box sizes.

  python tools/dataset_analysis.py --data data/shapes.yaml --split train --imgsz 640 --k 9
Writes runs/analysis/<name>/labels.jpg and prints the k-means anchors (pixels at --imgsz).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.downloads import ensure_dataset  # noqa: E402
from utils.data.files import img2label_paths, list_image_files  # noqa: E402
from utils.data.label_cache import load_verified  # noqa: E402
from utils.plot_labels import plot_labels  # noqa: E402


def kmeans_wh(wh: np.ndarray, k: int, seed: int = 0, iters: int = 100) -> np.ndarray:
    """Plain k-means (Euclidean) of box sizes; returns k centres sorted by area."""
    rng = np.random.default_rng(seed)
    c = wh[rng.choice(len(wh), min(k, len(wh)), replace=False)]
    for _ in range(iters):
        a = ((wh[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        new = np.array([wh[a == j].mean(0) if (a == j).any() else c[j] for j in range(len(c))])
        if np.allclose(new, c):
            break
        c = new
    return c[np.argsort(c.prod(1))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="data YAML")
    p.add_argument("--split", default="train", choices=("train", "val", "test"))
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--k", type=int, default=9)
    p.add_argument("--out", default="runs/analysis")
    a = p.parse_args()
    cfg = ensure_dataset(a.data)
    files = list_image_files(cfg[a.split])
    res = load_verified(files, img2label_paths(files), cfg.nc)
    print(res.summary())
    labels = np.concatenate(res.labels, 0) if res.labels else np.zeros((0, 5), np.float32)
    shapes = np.array(res.shapes, np.float64)
    wh = np.concatenate([lb[:, 3:5] * a.imgsz * s / s.max() for lb, s in zip(res.labels, shapes)], 0)
    anchors = kmeans_wh(wh, a.k) if len(wh) >= a.k else None
    for i, n in enumerate(np.bincount(labels[:, 0].astype(int), minlength=cfg.nc)):
        print(f"{cfg.names[i]:>20s} {n:7d}")
    if anchors is not None:
        print("k-means box sizes (px at imgsz):", ", ".join(f"{w:.0f}x{h:.0f}" for w, h in anchors))
    out = Path(a.out) / Path(a.data).stem / "labels.jpg"
    plot_labels(labels, cfg.names, out, kmeans_wh=anchors / a.imgsz if anchors is not None else None)
    print(f"saved {out}")


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
