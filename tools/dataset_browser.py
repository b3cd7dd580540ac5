"""Dataset browser: a grid of images with their labels drawn.

  python tools/dataset_browser.py --data data/shapes.yaml --split val --n 16 --start 0
Writes runs/browse/<name>_<split>_<start>.jpg.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.cli import UserValueError  # noqa: E402
from utils.downloads import ensure_dataset  # noqa: E402
from utils.data.dataloaders import LoadImagesAndLabels  # noqa: E402
from utils.plot_labels import plot_images  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="data YAML")
    p.add_argument("--split", default="train", choices=("train", "val", "test"))
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--out", default="runs/browse")
    a = p.parse_args()
    cfg = ensure_dataset(a.data)
    ds = LoadImagesAndLabels(cfg[a.split], img_size=a.imgsz, nc=cfg.nc)
    items = [ds[i] for i in range(a.start, min(a.start + a.n, len(ds)))]
    if not items:
        raise UserValueError(f"--start {a.start} is past the end ({len(ds)} images)")
    imgs, targets, paths, _ = LoadImagesAndLabels.collate_fn(items)
    out = Path(a.out) / f"{Path(a.data).stem}_{a.split}_{a.start}.jpg"
    plot_images(imgs, targets, paths, out, cfg.names, max_subplots=a.n)
    print(f"saved {out}")


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
