"""Train a YOLO detector (YOLOv5 flags and behaviour).

    python train.py --data data/shapes.yaml --cfg yolov5n.yaml --weights '' --imgsz 160 --epochs 30
    python train.py --data coco128.yaml --weights yolov5n.pt --imgsz 320 --epochs 1
    python train.py --resume runs/train/exp/weights/last.pt
    python train.py --data coco128.yaml --weights yolov5n.pt --epochs 10 --evolve 300   # runs/evolve/exp
    python train.py --resume-evolve runs/evolve/exp                                    # continue it
    torchrun --nproc_per_node 2 train.py --data ... --batch-size 32      # DDP (gloo on CPU, NCCL on CUDA)
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from utils.train.options import TrainOptions
from utils.train.trainer import Trainer, TrainResult, train

LOGGER = logging.getLogger("yolo")
__all__ = ["Trainer", "TrainResult", "evolve", "main", "parse_opt", "train"]


def evolve(opts: TrainOptions) -> Path:
    """--evolve / --resume-evolve: the generations of a hyperparameter evolution (utils/train/evolve_loop.py)."""
    from utils.torch_utils import select_device, set_train_threads
    from utils.train.ddp import dist_info
    from utils.train.evolve_loop import run_evolution

    opts.validate()
    device = select_device(opts.device)
    set_train_threads(opts.threads, device)
    return run_evolution(opts, lambda o, hyp: train(o, hyp).results, dist_info(), device)


def parse_opt(argv: list[str] | None = None) -> TrainOptions:
    """Command line -> TrainOptions (YOLOv5 flag names)."""
    d = TrainOptions()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=d.weights, help="initial weights: ours, official YOLOv5 .pt, or '' (scratch)")
    p.add_argument("--cfg", default=d.cfg, help="model YAML (path or name, e.g. yolov5n.yaml)")
    p.add_argument("--data", default=d.data, help="data YAML")
    p.add_argument("--hyp", default=d.hyp, help="hyperparameter YAML")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="total batch size over all processes")
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=d.imgsz, help="train/val image size (px)")
    p.add_argument("--rect", action="store_true", help="rectangular training batches")
    p.add_argument("--resume", nargs="?", const=True, default=False, help="resume the newest or the given last.pt")
    p.add_argument("--nosave", action="store_true", help="only save the final checkpoint")
    p.add_argument("--noval", action="store_true", help="only validate after the final epoch")
    p.add_argument("--noautoanchor", action="store_true", help="disable AutoAnchor")
    p.add_argument("--noplots", action="store_true", help="save no plot files")
    p.add_argument("--cache", nargs="?", const="ram", default=None, help="cache images in 'ram' (default) or 'disk'")
    p.add_argument("--device", default=d.device, help="cuda device, i.e. 0, or cpu")
    p.add_argument("--multi-scale", action="store_true", help="vary the image size +/- 50%%")
    p.add_argument("--single-cls", action="store_true", help="train multi-class data as one class")
    p.add_argument("--optimizer", choices=["SGD", "Adam", "AdamW"], default=d.optimizer)
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under DDP (CUDA)")
    p.add_argument("--workers", type=int, default=d.workers, help="dataloader workers per process")
    p.add_argument("--project", default=d.project)
    p.add_argument("--name", default=d.name)
    p.add_argument("--exist-ok", action="store_true", help="reuse an existing project/name folder")
    p.add_argument("--cos-lr", action="store_true", help="cosine LR schedule")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--patience", type=int, default=d.patience, help="early stopping patience (epochs)")
    p.add_argument("--freeze", nargs="+", default=d.freeze, help="freeze the first N layers, layer ids, or 'backbone'")
    p.add_argument("--backbone-weights", default=d.backbone_weights, help="pretrained ConvNeXt backbone weights")
    p.add_argument("--save-period", type=int, default=d.save_period, help="save epoch<N>.pt every N epochs")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--close-mosaic", type=int, default=d.close_mosaic, help="disable mosaic for the last N epochs")
    p.add_argument("--accumulate", type=int, default=None,
                   help="batches per optimizer step (default: round(64 / batch size) with YOLOv5's warmup ramp)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the forward pass (CPU)")
    p.add_argument("--threads", type=int, default=d.threads,
                   help="torch CPU threads (0: on CPU one fewer than the cores, leaving one to the loader)")
    p.add_argument("--evolve", type=int, nargs="?", const=300, default=d.evolve,
                   help="evolve hyperparameters for N generations (300 without N) into runs/evolve/exp")
    p.add_argument("--resume-evolve", default=d.resume_evolve, help="continue the evolution in DIR (or DIR/evolve.csv)")
    p.add_argument("--image-weights", action="store_true", help="sample images by the weights of their classes")
    p.add_argument("--quad", action="store_true", help="quad dataloader: 4 images merged into one of 2x size")
    p.add_argument("--save-period-steps", type=int, default=d.save_period_steps,
                   help="write weights/last_step.pt every N optimizer steps (mid-epoch resume; 0: off)")
    p.add_argument("--deterministic", action="store_true",
                   help="seeds per rank and per sample, deterministic algorithms: a resumed run ends as if never stopped")
    p.add_argument("--dist-timeout", type=float, default=d.dist_timeout,
                   help="seconds to reach the rendezvous and to wait in collectives under torchrun")
    a = p.parse_args(argv)
    a.resume = a.resume if isinstance(a.resume, (bool, str)) else bool(a.resume)
    return TrainOptions.from_dict(vars(a) | {"save_dir": ""})


def main(argv: list[str] | None = None) -> int:
    """CLI entry: configure logging, train, report divergence clearly."""
    from utils.train.ddp import dist_info
    from utils.train.loop import TrainingDiverged

    info = dist_info()
    logging.basicConfig(level=logging.INFO if info.main else logging.WARNING, format="%(message)s")
    opts = parse_opt(argv)
    try:
        evolve(opts) if (opts.evolve or opts.resume_evolve) else train(opts)
    except TrainingDiverged as e:
        LOGGER.error(f"ERROR: {e}")
        return 1
    return 0


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
