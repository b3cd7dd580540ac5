"""Time kmean_anchors on coco128 (n 9, 640, thr 4, 1000 generations) against the official YOLOv5 code.

Baseline: the `time_s` of the three official runs in ../shared/reference/yolov5/autoanchor.json (~0.2 s).
Usage: python bench/kmeans_speed.py [--seeds 10]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from utils.autoanchor import anchor_fitness, anchor_metrics, kmean_anchors, label_wh  # noqa: E402

SHARED = Path(os.environ.get("YOLO_SHARED", REPO.parent / "shared"))


def load_coco128(root: Path) -> SimpleNamespace:
    """shapes (w, h, EXIF-aware) and labels of coco128's train images, sorted by file name."""
    shapes, labels = [], []
    for img in sorted((root / "images" / "train2017").glob("*.jpg")):
        with Image.open(img) as im:
            w, h = im.size
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                w, h = h, w
        shapes.append((w, h))
        txt = root / "labels" / "train2017" / f"{img.stem}.txt"
        lab = np.loadtxt(txt, dtype=np.float32, ndmin=2) if txt.exists() else np.zeros((0, 5), np.float32)
        labels.append(lab.reshape(-1, 5))
    return SimpleNamespace(shapes=np.array(shapes), labels=labels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    ref_file = SHARED / "reference" / "yolov5" / "autoanchor.json"
    data_root = SHARED / "datasets" / "coco128"
    if not ref_file.exists() or not data_root.exists():
        print(f"shared data not found under {SHARED} (set YOLO_SHARED)")
        return 1
    ref = json.loads(ref_file.read_text())["kmeans"]
    base = float(np.mean([r["time_s"] for r in ref]))
    ds = load_coco128(data_root)
    wh0 = label_wh(ds.shapes, ds.labels, 640)
    wh = wh0[(wh0 >= 2.0).any(1)]
    kmean_anchors(ds, gen=10, verbose=False, rng=np.random.default_rng(0))  # warm-up (imports)
    times, fits, bprs = [], [], []
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        k = kmean_anchors(ds, n=9, img_size=640, thr=4.0, gen=1000, verbose=False, rng=np.random.default_rng(seed))
        times.append(time.perf_counter() - t0)
        fits.append(anchor_fitness(k, wh, 4.0))
        bprs.append(anchor_metrics(wh0, k, 4.0)[0])
        print(f"seed {seed}: {times[-1]:.3f} s  fitness {fits[-1]:.4f}  BPR {bprs[-1]:.4f}")
    med = float(np.median(times))
    ref_fits = ", ".join(f"{r['fitness']:.4f}" for r in ref)
    print(f"official: {base:.3f} s (mean of {len(ref)} runs), fitness {ref_fits}")
    print(f"ours: median {med:.3f} s -> speed-up x{base / med:.2f}; fitness median {np.median(fits):.4f}, "
          f"{np.mean(np.array(fits) >= 0.64):.0%} of seeds >= 0.64, "
          f"{np.mean(np.array(bprs) >= 0.98):.0%} with BPR >= 0.98")
    return 0


if __name__ == "__main__":
    sys.exit(main())
