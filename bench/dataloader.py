"""Training-loader throughput on coco128 (640, mosaic, hyp.scratch-low, batch 16, 2 workers, 3 passes).

Prints images/s per pass with and without --cache ram, the ratio to the official YOLOv5 loader (measured on this
machine by bench/official_baseline.py, else ~100 img/s from ../shared/reference/yolov5/perf.md section e) and a
per-stage time profile. --shards: the same passes from WebDataset tar shards of the source (written to a temporary
folder, 16 images a shard) against the folder loader.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/dataloader.py`
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2
import numpy as np
import torch

from baseline import SHARED, add_baseline_arg, load_baseline  # noqa: E402
from utils.data.augment import augment_hsv, random_perspective
from utils.data.chw import chw_rgb
from utils.data.dataloaders import LoadImagesAndLabels, create_dataloader
from utils.hyp import load_hyp
from utils.data.files import list_image_files
from utils.data.image_check import read_image
from utils.data.image_decode import decode_image
from utils.data.mosaic import mosaic4


def pass_rates(loader, passes: int) -> list[float]:
    """Images/s of each of `passes` full passes over `loader`."""
    rates = []
    for _ in range(passes):
        t0, n = time.perf_counter(), 0
        for imgs, *_ in loader:
            n += imgs.shape[0]
        rates.append(n / (time.perf_counter() - t0))
    return rates


def run_passes(source: str, hyp: dict, cache: str | None, passes: int, workers: int) -> list[float]:
    """Images/s of each full pass over the training loader."""
    loader, ds = create_dataloader(source, 640, 16, 32, hyp=hyp, augment=True, cache=cache, workers=workers,
                                   shuffle=True, seed=0)
    return pass_rates(loader, passes)


def run_shard_passes(source: str, hyp: dict, passes: int, workers: int) -> list[float]:
    """Images/s of each full pass over the shard loader, shards written from `source` to a temporary folder."""
    import tempfile

    from utils.data.shards.loader import create_shard_loader
    from utils.data.shards.write import write_shards

    with tempfile.TemporaryDirectory() as tmp:
        res = write_shards(source, tmp, "train-", 16)
        loader, _ = create_shard_loader([str(Path(tmp) / res.pattern)], 640, 16, 32, hyp=hyp, augment=True,
                                        workers=workers, seed=0)
        return pass_rates(loader, passes)


def _steady(rates: list[float]) -> float:
    return float(np.mean(rates[1:]) if len(rates) > 1 else rates[0])


def _timed(fn, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps * 1e3


def decode_ms(files: list[str], picks, reps: int = 32) -> float:
    """Milliseconds to decode the 4 images of one mosaic sample as the training loader does (utils/data/image_decode.py)."""
    return _timed(lambda: [decode_image(files[i], 640) for i in picks], reps)


def sample_decode_ms(files: list[str], reps: int = 3) -> float:
    """Mean milliseconds to decode one image of `files` as the training loader does, over every file (a mosaic
    sample's 4 are drawn uniformly, so 4x this is its mean decode time); the best of `reps` passes."""
    return min(_timed(lambda: [decode_image(f, 640) for f in files], 1) / len(files) for _ in range(reps))


def profile(source: str, hyp: dict, reps: int = 32) -> dict[str, float]:
    """Milliseconds per training sample spent in each stage (single process)."""
    ds = LoadImagesAndLabels(source, 640, 16, augment=True, hyp=hyp)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(ds), (reps, 4))
    files = ds.im_files
    t = {"decode (4 images, OpenCV)": _timed(lambda: [read_image(files[i]) for i in idx[0]], reps),
         "decode (4 images, loader's)": decode_ms(files, idx[0], reps)}
    raw = [read_image(files[i]) for i in idx[0]]
    t["resize (4 images)"] = _timed(lambda: [cv2.resize(r, (640, 640 * r.shape[0] // r.shape[1])) for r in raw], reps)
    ims = [ds.load_image(i)[0] for i in idx[0]]
    t["mosaic canvas"] = _timed(lambda: mosaic4(ims, [ds.labels[i] for i in idx[0]], 640, rng), reps)
    m, lab = mosaic4(ims, [ds.labels[i] for i in idx[0]], 640, rng)
    t["perspective"] = _timed(lambda: random_perspective(m, lab.copy(), rng, 0, 0.1, 0.5, 0, 0, (-320, -320)), reps)
    out = random_perspective(m, lab.copy(), rng, 0, 0.1, 0.5, 0, 0, (-320, -320))[0]
    t["hsv"] = _timed(lambda: augment_hsv(out, rng, 0.015, 0.7, 0.4), reps)
    t["to tensor (flip BGR->RGB, CHW)"] = _timed(lambda: torch.from_numpy(chw_rgb(out)), reps)
    batch = [ds[i] for i in range(16)]
    t["collate (per sample)"] = _timed(lambda: LoadImagesAndLabels.collate_fn(batch), 8) / 16
    t["full __getitem__"] = _timed(lambda: ds[int(rng.integers(len(ds)))], reps)
    return t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--source", default=str(SHARED / "datasets/coco128/images/train2017"))
    p.add_argument("--hyp", default="data/hyps/hyp.scratch-low.yaml")
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--shards", action="store_true", help="compare the tar-shard loader with the folder loader")
    add_baseline_arg(p)
    a = p.parse_args()
    if a.shards:
        cv2.setNumThreads(0)
        hyp = load_hyp(a.hyp)
        folder = _steady(run_passes(a.source, hyp, None, a.passes, a.workers))
        shards = _steady(run_shard_passes(a.source, hyp, a.passes, a.workers))
        print(f"folder loader {folder:.1f} img/s, shard loader {shards:.1f} img/s = {shards / folder:.2f}x folder")
        return
    official, source = load_baseline(a.baseline)
    base = official["dataloader_img_s"]
    print(f"official loader: {base:.0f} img/s from {source}")
    cv2.setNumThreads(0)
    hyp = load_hyp(a.hyp)
    files = list_image_files(a.source)
    dec = 4 * sample_decode_ms(files) if files else float("nan")
    limit = a.workers * 1000 / dec
    print(f"pure-decode limit: {a.workers} workers x 1000 / {dec:.1f} ms per sample (4 JPEGs) = {limit:.0f} img/s")
    for cache in (None, "ram"):
        rates = run_passes(a.source, hyp, cache, a.passes, a.workers)
        steady = _steady(rates)
        print(f"cache={cache!s:5} " + "  ".join(f"pass{i + 1} {r:6.1f} img/s" for i, r in enumerate(rates))
              + f"  -> steady {steady:.1f} img/s = {steady / base:.2f}x official ({base:.0f} img/s)"
              + (f", {steady / limit:.0%} of the pure-decode limit {limit:.0f} img/s" if cache is None else ""))
    print("\nwhere the time goes (ms per training sample, one process, no cache):")
    for k, v in profile(a.source, hyp).items():
        print(f"  {k:32s} {v:7.2f} ms")


if __name__ == "__main__":
    main()
