"""Train-loop speed: yolov5n at 320 on coco128, batch 16, 2 workers, 1 epoch, against the official YOLOv5 loop.

Baseline: the official loop measured on this machine by bench/official_baseline.py, else 15.3 images/s from scratch
(../shared/reference/yolov5/perf.md, section a: on_train_epoch_start to on_train_epoch_end, i.e. loading + forward +
loss + backward + optimizer every 4 batches + EMA).
Each configuration runs the same seeded epoch; the first-batch loss items must be identical between the
configurations: bit-identical when the thread count is the same (e.g. --cache ram), and equal to 1e-6
relative when it differs (float32 reductions are split differently over 1 or 2 threads).
Usage: python bench/train_speed.py [--configs default cache1t] [--epochs-warm 0]

--ultralytics PYTHON: yolov8n (hyp.v8.yaml) against the ultralytics 8.4 trainer, run by that python in its own
environment (bench/ultralytics_train_worker.py), alternating --rounds epochs per side; each round prints the
machine's load, each side's threads and workers and the same-round ratio. The same work on both sides: one epoch
from scratch on coco128 at 320, batch 16, mosaic on (the original's close_mosaic set to 0: its default 10 turns
mosaic off in a 1-epoch run), no cache, no rect, float32 (no AMP), no plots, no validation, timed from epoch start
to epoch end (loading, forward, loss, backward, optimizer steps, EMA). Each side keeps its own CPU defaults:
the original loads in the main process (its trainer sets 0 workers on CPU) with min(8, cores - 1) torch threads
in NCHW; ours loads in 2 workers with the same thread rule (train.py's --threads 0) and feeds the batch
channels_last. The original skips warmup in a 1-epoch run (2 optimizer steps of 4 accumulated batches); ours
warms up as YOLOv5 (8 steps, 8 EMA updates). The two loops draw different augmented batches, so the loss check
is on the original's first batch: our model loaded with the original's starting weights and our loss
(utils/loss_v8.py) must give its first-batch loss items to 1e-4 relative (float32 forward through the net).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402

from baseline import SHARED, add_baseline_arg, load_baseline  # noqa: E402

CONFIGS = {  # name -> (TrainOptions overrides, torch threads or None for train()'s default, --threads 0)
    "default": ({}, None),
    "cache": ({"cache": "ram"}, None),
    "1thread": ({}, 1),
    "cache1t": ({"cache": "ram"}, 1),
}


def run_config(name: str, tmp: Path, cfg: str = "yolov5n.yaml",
               hyp: str | None = None) -> tuple[float, list[float], str]:
    """(images/s of one train epoch, first-batch loss items, "N threads, W workers") for one configuration (our
    trainer's only driver)."""
    from utils.torch_utils import select_device, set_train_threads
    from utils.train.ddp import dist_info
    from utils.train.loop import train_epoch
    from utils.train.options import TrainOptions
    from utils.train.trainer import Trainer

    overrides, threads = CONFIGS[name]
    n_threads = torch.get_num_threads()
    settings = dict(data=str(SHARED / "datasets" / "coco128" / "coco128.yaml"), cfg=cfg, weights="", imgsz=320,
                    epochs=1, batch_size=16, workers=2, noplots=True, project=str(tmp), name=name, seed=0,
                    threads=threads or 0)
    opts = TrainOptions(**{**settings, **overrides, **({"hyp": hyp} if hyp else {})})
    device = select_device("cpu")
    set_train_threads(opts.threads, device)  # as train() does
    run = Trainer(opts, dist_info(), device).setup()
    first: list[float] = []
    loss_fn = run.compute_loss

    def recording_loss(preds, targets):
        out = loss_fn(preds, targets)
        if not first:
            first.extend(out[1].tolist())
        return out

    run.compute_loss = recording_loss
    used = f"{torch.get_num_threads()} threads, {run.loader.num_workers} workers"
    t0 = time.perf_counter()
    train_epoch(run, 0)
    dt = time.perf_counter() - t0
    torch.set_num_threads(n_threads)
    return len(run.dataset) / dt, first, used


def writable_coco128(tmp: Path) -> Path:
    """A copy of coco128 (the original writes a label cache beside the labels) whose YAML has an absolute path."""
    import yaml

    root = tmp / "coco128"
    shutil.copytree(SHARED / "datasets" / "coco128", root)
    data = yaml.safe_load((root / "coco128.yaml").read_text())
    data["path"] = str(root.resolve())
    (root / "coco128.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root / "coco128.yaml"


def ultralytics_epoch(python: str, cfg: str, tmp: Path) -> dict:
    """One epoch of the original trainer in its environment: seconds, images, starting weights, first batch."""
    import matplotlib

    config = tmp / "ultralytics_config"  # a local font: the original would download Arial.ttf
    config.mkdir()
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", config / name)
    out = tmp / "ultralytics_epoch.pt"
    cmd = [python, str(REPO / "bench" / "ultralytics_train_worker.py"), cfg, str(writable_coco128(tmp)), "320",
           "16", "2", str(out)]
    done = subprocess.run(cmd, cwd=tmp, env={**os.environ, "YOLO_CONFIG_DIR": str(config)},
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the ultralytics trainer failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return torch.load(out, weights_only=True)


def loss_items_on(rec: dict, cfg: str, hyp_file: str) -> list[float]:
    """Our loss items on the original's first batch, from the original's starting weights (train mode)."""
    from models.yolo import Model
    from utils.hyp import load_hyp
    from utils.loss_factory import make_loss

    model = Model(cfg, nc=80)
    model.load_state_dict(rec["state_dict"])
    b = rec["batch"]
    targets = torch.cat((b["batch_idx"].view(-1, 1), b["cls"].view(-1, 1), b["bboxes"]), 1)
    loss = make_loss(model.detect, load_hyp(hyp_file), 80, b["img"].shape[-1])
    with torch.no_grad():
        return loss(model.train()(b["img"]), targets)[1].tolist()


def against_ultralytics(python: str, cfg: str = "yolov8n.yaml", hyp: str = "data/hyps/hyp.v8.yaml",
                        rounds: int = 2) -> int:
    """The original's epoch and ours, alternating `rounds` times (the best of each side: a shared machine's load
    only slows a run down), then the first-batch loss check; 0 when the items agree."""
    theirs, ours = [], []
    with tempfile.TemporaryDirectory() as t:
        for r in range(rounds):
            tmp = Path(t) / f"round{r}"
            tmp.mkdir()
            load = os.getloadavg()[0]
            rec = ultralytics_epoch(python, cfg, tmp)
            theirs.append(rec["images"] / rec["seconds"])
            speed, our_first, used = run_config("default", tmp / "ours", cfg, str(REPO / hyp))
            ours.append(speed)
            print(f"round {r + 1} (load {load:.1f} -> {os.getloadavg()[0]:.1f}): ultralytics {theirs[-1]:.2f} img/s "
                  f"({rec['threads']} threads, {rec['workers']} workers), ours {ours[-1]:.2f} img/s ({used}) -> "
                  f"{ours[-1] / theirs[-1]:.2f}x",
                  flush=True)
    items = loss_items_on(rec, cfg, str(REPO / hyp))
    ref = rec["loss_items"].tolist()
    rel = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(items, ref))
    ratios = sorted(o / t for o, t in zip(ours, theirs))
    print(f"{cfg} at 320, batch 16, 1 epoch of coco128 (best of {rounds}): ultralytics {max(theirs):.2f} img/s, "
          f"ours {max(ours):.2f} img/s -> {max(ours) / max(theirs):.2f}x; same-round ratios "
          f"{ratios[0]:.2f}x-{ratios[-1]:.2f}x, median {statistics.median(ratios):.2f}x")
    print(f"first batch of the original ({rec['loss_names']}): its loss items {[round(v, 6) for v in ref]}, ours "
          f"{[round(v, 6) for v in items]} (max rel diff {rel:.1e}); our loop's own first batch: "
          f"{[round(v, 6) for v in our_first]}")
    return 0 if rel < 1e-4 else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["default", "cache1t"], choices=list(CONFIGS))
    p.add_argument("--project", default="runs/bench_train")
    p.add_argument("--ultralytics", metavar="PYTHON", help="yolov8n against the ultralytics 8.4 trainer run by this python")
    p.add_argument("--rounds", type=int, default=2, help="--ultralytics: alternating epochs per side")
    add_baseline_arg(p)
    a = p.parse_args(argv)
    if a.ultralytics:
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        return against_ultralytics(a.ultralytics, rounds=a.rounds)
    official, source = load_baseline(a.baseline)
    base = official["train_img_s"]
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    rows, ref = [], None
    for name in a.configs:
        speed, first, _ = run_config(name, Path(a.project))
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
