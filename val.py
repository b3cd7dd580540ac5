"""Validate a detector on a dataset: P, R, mAP50, mAP50-95 as YOLOv5's val.py computes them.

    python val.py --weights yolov5n.pt --data coco128.yaml --img 640 --batch-size 32
    python val.py --task speed --weights yolov5n.pt yolov5s.pt --data coco128.yaml --batch 1   # timings
    python val.py --task study --weights yolov5n.pt --data coco128.yaml    # mAP and speed for sizes 256..1536

Rect batches (letterbox to the per-batch shape, pad 0.5), conf 0.001, IoU 0.6, multi-label NMS, max 300
detections, matching in original-image pixels. Writes runs/val/exp<N>/metrics.json (overall and per class),
curves and the confusion matrix, and with --save-json COCO detections evaluated by pycocotools.
--task speed (per weights: conf 0.25, IoU 0.45, square batches, no plots, timings reported) and --task study
(per weights and --study-sizes: study_<data>_<weights>.txt in YOLOv5's format, study.png) as YOLOv5.
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import asdict

from utils.cli import UserValueError
from utils.validation import STUDY_SIZES, TASKS, ValOptions, validate
from utils.validation.tasks import speed, study, weights_list

LOGGER = logging.getLogger("yolo.val")
__all__ = ["ValOptions", "parse_opt", "run", "speed", "study", "main"]


def run(data, weights=None, **options):
    """YOLOv5's `val.run(data, weights, ...)`: `utils.validation.validate` with ValOptions fields as keywords."""
    return validate(data, weights=weights, **options)


def parse_opt(argv: list[str] | None = None) -> ValOptions:
    """argparse -> ValOptions (YOLOv5's flag names, with --img / --batch as aliases)."""
    d = ValOptions()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=d.data, help="data YAML")
    p.add_argument("--weights", nargs="+", default=d.weights,
                   help=".pt (ours or official), .torchscript, .onnx, *_openvino_model/, or Darknet .weights with "
                        "--cfg; several for --task speed / study")
    p.add_argument("--cfg", default=d.cfg, help="Darknet .cfg for .weights files")
    p.add_argument("--darknet-mode", action="store_true",
                   help="Darknet .weights: Darknet's own resize, thresholds and NMS instead of YOLOv5's pipeline")
    p.add_argument("--batch-size", "--batch", type=int, default=d.batch_size)
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=d.imgsz, help="inference size (pixels)")
    p.add_argument("--conf-thres", type=float, default=d.conf_thres)
    p.add_argument("--iou-thres", type=float, default=d.iou_thres)
    p.add_argument("--max-det", type=int, default=d.max_det)
    p.add_argument("--task", default=d.task, choices=TASKS)
    p.add_argument("--device", default=d.device, help="cuda device, i.e. 0 or cpu")
    p.add_argument("--workers", type=int, default=d.workers, help="dataloader workers")
    for flag in ("single-cls", "augment", "verbose", "save-txt", "save-conf", "save-json", "exist-ok", "half"):
        p.add_argument(f"--{flag}", action="store_true")
    p.add_argument("--backend", dest="runtime", default=d.runtime,
                   help="ONNX Runtime execution provider (cpu, cuda, openvino, ...) / OpenVINO device (CPU, GPU, AUTO)")
    p.add_argument("--compile", action="store_true", help="PyTorch weights: torch.compile (inductor, frozen)")
    p.add_argument("--bf16", action="store_true",
                   help="CPUs with AVX-512 BF16 / AMX: bf16 autocast (PyTorch), bf16 inference (OpenVINO IR)")
    p.add_argument("--project", default=d.project)
    p.add_argument("--name", default=d.name)
    p.add_argument("--study-sizes", nargs="+", type=int, default=d.study_sizes,
                   help=f"image sizes of --task study (default {STUDY_SIZES[0]}..{STUDY_SIZES[-1]} step 128)")
    return ValOptions(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    opt = parse_opt(argv)
    LOGGER.info("val: " + ", ".join(f"{k}={v}" for k, v in asdict(opt).items()))
    if opt.task == "speed":
        return speed(opt)
    if opt.task == "study":
        return study(opt)
    weights = weights_list(opt.weights)
    if len(weights) > 1:
        raise UserValueError(f"--task {opt.task} validates one model, got {len(weights)} --weights (ensembles are not "
                         "supported; --task speed and study loop over several)")
    return validate(opt.data, opt, weights=weights[0])


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
