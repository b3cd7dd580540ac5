"""Positive-sample view: the cells and anchors `build_targets` assigns to each target, drawn per level.

  python tools/positive_samples.py --cfg yolov5s.yaml --data coco128.yaml --imgsz 640 --batch-size 4
Writes runs/analyze/positive_samples/<name>/positives.jpg (rows: images; columns: detection levels; each
assigned (cell, anchor) pair filled in its anchor's colour, targets outlined) and positives.txt (the
number of assignments per image and level). The assignment rule is documented in utils/loss.py.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.analysis.common import add_model_args, add_output_args, analysis_model, output_dir, save_text  # noqa: E402
from utils.analysis.positive_samples import assign, draw_assignments, legend_text  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--data", required=True, help="data YAML")
    p.add_argument("--split", default="train", choices=("train", "val", "test"), help="images to draw")
    p.add_argument("--hyp", default=str(REPO / "data" / "hyps" / "hyp.scratch-low.yaml"), help="anchor_t")
    p.add_argument("--imgsz", type=int, default=640, help="letterboxed input size")
    p.add_argument("--batch-size", type=int, default=4, help="images drawn")
    p.add_argument("--augment", action="store_true", help="draw a training batch (mosaic etc.) instead")
    p.add_argument("--seed", type=int, default=0, help="augmentation seed")
    add_output_args(p, "positive_samples")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    from utils.data_yaml import load_data_yaml
    from utils.dataloaders import create_dataloader
    from utils.hyp import load_hyp

    opt = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = analysis_model(opt.cfg, opt.weights)
    data, hyp = load_data_yaml(opt.data), load_hyp(opt.hyp)
    loader, _ = create_dataloader(data.sources(opt.split), opt.imgsz, opt.batch_size,
                                  int(model.stride.max()), hyp=hyp, augment=opt.augment, workers=0,
                                  shuffle=opt.augment, seed=opt.seed, nc=data.nc)
    imgs, targets, paths, _ = next(iter(loader))
    levels = assign(model.detect, targets, len(imgs), tuple(imgs.shape[2:]), hyp)
    mosaic, counts = draw_assignments(imgs.numpy(), targets.numpy(), levels, max_images=opt.batch_size)
    out = output_dir(opt.project, opt.name, opt.exist_ok)
    cv2.imwrite(str(out / "positives.jpg"), mosaic)
    text = legend_text(levels, counts, [Path(p).name for p in paths])
    print(text)
    save_text(out / "positives.txt", text)
    return out


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
