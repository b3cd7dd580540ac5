"""Anchor analysis: the model's anchors against the dataset's box sizes, per level, before and after k-means.

  python tools/anchor_analysis.py --cfg yolov5s.yaml --data coco128.yaml --imgsz 640 [--thr 4.0 --gen 1000]
Writes runs/analyze/anchor_analysis/<name>/anchors.png (rows: model anchors, k-means anchors; columns:
levels) and anchors.txt (BPR and anchors-above-threshold overall and per level, plus the new anchors as
a model YAML block).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.analysis.anchors import analyse, model_anchors_px, plot_anchors  # noqa: E402
from utils.autoanchor import anchors_yaml, dataset_labels  # noqa: E402
from utils.analysis.common import add_model_args, add_output_args, analysis_model, output_dir, save_text  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--data", required=True, help="data YAML")
    p.add_argument("--split", default="train", choices=("train", "val", "test"), help="which images' labels")
    p.add_argument("--imgsz", type=int, default=640, help="training image size (pixels)")
    p.add_argument("--thr", type=float, default=4.0, help="anchor_t: max width/height ratio")
    p.add_argument("--gen", type=int, default=1000, help="generations of anchor evolution")
    p.add_argument("--seed", type=int, default=0, help="random seed of k-means and evolution")
    add_output_args(p, "anchor_analysis")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    opt = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = analysis_model(opt.cfg, opt.weights)
    dataset = dataset_labels(opt.data, opt.split)
    wh, before, after = analyse(model, dataset, opt.imgsz, opt.thr, opt.gen, np.random.default_rng(opt.seed))
    _, strides = model_anchors_px(model)
    out = output_dir(opt.project, opt.name, opt.exist_ok)
    text = "\n".join([f"{len(wh)} labels of {opt.data} ({opt.split}) at {opt.imgsz}px, thr {opt.thr}",
                      before.summary(strides), after.summary(strides),
                      anchors_yaml(after.anchors.reshape(-1, 2), len(strides))])
    print(text)
    save_text(out / "anchors.txt", text)
    plot_anchors(wh, [before, after], out / "anchors.png", opt.thr, strides)
    return out


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
