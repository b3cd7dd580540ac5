"""Positive-sample view: the priors the training loss assigns to each box, drawn per level.

  python tools/positive_samples.py --cfg yolov5s.yaml --data coco128.yaml --imgsz 640 --batch-size 4
  python tools/positive_samples.py --weights runs/train/exp/weights/best.pt --data shapes.yaml   # yolov8n: TAL
Writes runs/analyze/positive_samples/<name>/positives.jpg (rows: images; columns: detection levels; each
positive prior's cell filled in the colour of its box, boxes outlined) and positives.txt (pairs per image
and level, then per box). The loss is the one the model's head trains with, asked through the loss contract
(`positives`, utils/loss_protocol.py): YOLOv5's build_targets (utils/loss.py) or the TaskAlignedAssigner of
the anchor-free family (utils/tal.py, which depends on the model's predictions: use --weights for a trained one).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.analysis.common import add_model_args, add_output_args, analysis_model, output_dir, save_text  # noqa: E402
from utils.analysis.positive_samples import compute_positives, draw_positives, legend_text  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--data", required=True, help="data YAML")
    p.add_argument("--split", default="train", choices=("train", "val", "test"), help="images to draw")
    p.add_argument("--hyp", default=str(REPO / "data" / "hyps" / "hyp.scratch-low.yaml"),
                   help="the loss's hyperparameters (YOLOv5: anchor_t)")
    p.add_argument("--imgsz", type=int, default=640, help="letterboxed input size")
    p.add_argument("--batch-size", type=int, default=4, help="images drawn")
    p.add_argument("--augment", action="store_true", help="draw a training batch (mosaic etc.) instead")
    p.add_argument("--seed", type=int, default=0, help="augmentation seed")
    add_output_args(p, "positive_samples")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    from utils.downloads import ensure_dataset
    from utils.data.dataloaders import create_dataloader
    from utils.hyp import load_hyp

    opt = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = analysis_model(opt.cfg, opt.weights)
    data, hyp = ensure_dataset(opt.data), load_hyp(opt.hyp)
    loader, _ = create_dataloader(data.sources(opt.split), opt.imgsz, opt.batch_size,
                                  int(model.stride.max()), hyp=hyp, augment=opt.augment, workers=0,
                                  shuffle=opt.augment, seed=opt.seed, nc=data.nc)
    imgs, targets, paths, _ = next(iter(loader))
    positives, strides = compute_positives(model, imgs.float() / 255, targets, hyp)
    mosaic, _ = draw_positives(imgs.numpy(), targets.numpy(), positives, strides, max_images=opt.batch_size)
    out = output_dir(opt.project, opt.name, opt.exist_ok)
    cv2.imwrite(str(out / "positives.jpg"), mosaic)
    text = legend_text(positives, strides, targets.numpy(), list(paths))
    print(text)
    save_text(out / "positives.txt", text)
    return out


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
