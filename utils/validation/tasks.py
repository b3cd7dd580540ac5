"""val.py's --task speed and --task study (YOLOv5's rules) on top of `validate`."""
from __future__ import annotations

import logging
from pathlib import Path

from utils.paths import increment_path
from utils.validation.options import STUDY_SIZES, ValOptions
from utils.validation.run import validate

LOGGER = logging.getLogger("yolo.val")


def weights_list(weights) -> list:
    """--weights as a list (one or several files)."""
    return list(weights) if isinstance(weights, (list, tuple)) else [weights]


def speed(opt: ValOptions) -> list[tuple]:
    """YOLOv5's --task speed: each weights at conf 0.25, IoU 0.45, no plots and no json; timings logged."""
    return [validate(opt.data, opt, weights=w, conf_thres=0.25, iou_thres=0.45, save_json=False, half=True,
                     plots=False) for w in weights_list(opt.weights)]


def study(opt: ValOptions) -> Path:
    """YOLOv5's --task study: per weights, a row (P, R, mAP50, mAP50-95, 3 losses, 3 ms) per image size (FP16 on
    CUDA, as YOLOv5); each size's metrics.json in <weights>_<size>/."""
    from utils.plot_study import plot_study, write_study

    sizes = list(opt.study_sizes or STUDY_SIZES)
    out = increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok, mkdir=True)
    files = []
    for w in weights_list(opt.weights):
        f = out / f"study_{Path(str(opt.data)).stem}_{Path(str(w)).stem}.txt"
        rows = []
        for sz in sizes:
            LOGGER.info(f"\nRunning {f.name} --imgsz {sz}...")
            r, _, t = validate(opt.data, opt, weights=w, imgsz=sz, plots=False, half=True,
                               save_dir=out / f"{Path(str(w)).stem}_{sz}")
            rows.append([*r, *t])
        files.append(write_study(f, rows))
    png = plot_study(files, sizes, out / "study.png")
    LOGGER.info(f"Study saved to {out}: {', '.join(f.name for f in files)}, {png.name}")
    return out
