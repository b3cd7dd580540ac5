"""Train-loop speed: yolov5n at 320 on coco128, batch 16, 2 workers, 1 epoch, against the official YOLOv5 loop.

Baseline: the official loop measured on this machine by bench/official_baseline.py, else 15.3 images/s from scratch
(../shared/reference/yolov5/perf.md, section a: on_train_epoch_start to on_train_epoch_end, i.e. loading + forward +
loss + backward + optimizer every 4 batches + EMA).
Each configuration runs the same seeded epoch; the first-batch loss items must be identical between the
configurations: bit-identical when the thread count is the same (e.g. --cache ram), and equal to 1e-6
relative when it differs (float32 reductions are split differently over 1 or 2 threads).
Usage: python bench/train_speed.py [--configs default cache1t] [--epochs-warm 0]
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402

from baseline import SHARED, add_baseline_arg, load_baseline  # noqa: E402

CONFIGS = {  # name -> (TrainOptions overrides, torch threads or None for the default)
    "default": ({}, None),
    "cache": ({"cache": "ram"}, None),
    "1thread": ({}, 1),
    "cache1t": ({"cache": "ram"}, 1),
}


def run_config(name: str, tmp: Path) -> tuple[float, list[float]]:
    """(images/s of one train epoch, first-batch loss items) for one configuration."""
    from utils.torch_utils import select_device
    from utils.train.ddp import dist_info
    from utils.train.loop import train_epoch
    from utils.train.options import TrainOptions
    from utils.train.trainer import Trainer

    overrides, threads = CONFIGS[name]
    n_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    opts = TrainOptions(data=str(SHARED / "datasets" / "coco128" / "coco128.yaml"), cfg="yolov5n.yaml",
                        weights="", imgsz=320, epochs=1, batch_size=16, workers=2, noplots=True,
                        project=str(tmp), name=name, seed=0, **overrides)
    run = Trainer(opts, dist_info(), select_device("cpu")).setup()
    first: list[float] = []
    loss_fn = run.compute_loss

    def recording_loss(preds, targets):
        out = loss_fn(preds, targets)
        if not first:
            first.extend(out[1].tolist())
        return out

    run.compute_loss = recording_loss
    t0 = time.perf_counter()
    train_epoch(run, 0)
    dt = time.perf_counter() - t0
    torch.set_num_threads(n_threads)
    return len(run.dataset) / dt, first


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["default", "cache1t"], choices=list(CONFIGS))
    p.add_argument("--project", default="runs/bench_train")
    add_baseline_arg(p)
    a = p.parse_args(argv)
    official, source = load_baseline(a.baseline)
    base = official["train_img_s"]
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    rows, ref = [], None
    for name in a.configs:
        speed, first = run_config(name, Path(a.project))
        ref = ref or (first, CONFIGS[name][1])
        exact = CONFIGS[name][1] == ref[1]
        rel = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(first, ref[0]))
        rows.append((name, speed, first, rel == 0 if exact else rel < 1e-6, rel))
    print(f"\n{'config':>10} {'img/s':>8} {'x official':>11}  first-batch loss items [box, obj, cls]")
    for name, speed, first, same, rel in rows:
        print(f"{name:>10} {speed:8.1f} {speed / base:10.2f}x  {first} max rel diff {rel:.1e}"
              f"{'' if same else ' DIFFERENT'}")
    ok = all(r[3] for r in rows)
    print(f"official loop: {base} img/s from {source}; first-batch losses match: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
