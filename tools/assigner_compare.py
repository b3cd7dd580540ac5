"""Compare assigners: each model's positive priors on the same real image, one panel per model, side by side.

  python tools/assigner_compare.py --data data/shapes.yaml --imgsz 256 \
      --cfg retinanet-csp.yaml fcos-csp.yaml atss-csp.yaml gfl-csp.yaml yolox-csp.yaml
Writes runs/analyze/assigners/<name>/assigners.jpg (panels: the image, its targets, every positive prior's centre
in its target's colour, larger for coarser levels) and assigners.txt (positives per target and level). --weights
takes checkpoints instead of YAMLs (prediction-aware assigners such as SimOTA then see trained predictions).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.analysis.common import add_output_args, analysis_model, output_dir, save_text  # noqa: E402

DEFAULT_CFGS = ("retinanet-csp.yaml", "fcos-csp.yaml", "atss-csp.yaml", "gfl-csp.yaml", "yolox-csp.yaml")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", nargs="+", default=None, help=f"model YAMLs (default: {' '.join(DEFAULT_CFGS)})")
    p.add_argument("--weights", nargs="+", default=None, help="checkpoints instead of --cfg")
    p.add_argument("--data", required=True, help="data YAML")
    p.add_argument("--split", default="val", choices=("train", "val", "test"), help="where the image comes from")
    p.add_argument("--index", type=int, default=0, help="which image of the split")
    p.add_argument("--imgsz", type=int, default=256, help="letterboxed input size")
    add_output_args(p, "assigners")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:

    from utils.analysis.assigner_compare import assigner_name, draw_panel, positives_of, summary_line
    from utils.downloads import ensure_dataset
    from utils.data.dataloaders import create_dataloader
    from utils.loss_factory import make_loss

    opt = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = ensure_dataset(opt.data)
    sources = [("weights", w) for w in opt.weights] if opt.weights else [("cfg", c) for c in opt.cfg or DEFAULT_CFGS]
    models = [analysis_model(**{kind: src}, nc=None if kind == "weights" else data.nc) for kind, src in sources]
    stride = max(int(m.stride.max()) for m in models)
    loader, dataset = create_dataloader(data.sources(opt.split), opt.imgsz, 1, stride, hyp={}, augment=False,
                                        workers=0, shuffle=False, nc=data.nc)
    img, targets, paths, _ = dataset.collate_fn([dataset[opt.index]])
    im = img.float() / 255
    bgr = np.ascontiguousarray(img[0].numpy().transpose(1, 2, 0)[..., ::-1])
    panels, lines = [], [f"{paths[0]}: {len(targets)} targets"]
    for (_, src), model in zip(sources, models):
        head = model.detect
        loss = make_loss(head, {"box": 0.05, "obj": 1.0, "cls": 0.5, "dfl": 1.5, "anchor_t": 4.0}, data.nc, opt.imgsz)
        if not hasattr(loss, "positives"):
            raise SystemExit(f"{src}: its loss ({head.loss_name}) states no positives()")
        pos = positives_of(model, loss, im, targets)
        title = f"{Path(src).stem}: {assigner_name(head)}"
        panels.append(draw_panel(bgr, targets, pos, title))
        lines.append(summary_line(title, pos, len(targets)))
    out = output_dir(opt.project, opt.name, opt.exist_ok)
    cv2.imwrite(str(out / "assigners.jpg"), np.concatenate(panels, 1))
    text = "\n".join(lines)
    print(text)
    save_text(out / "assigners.txt", text)
    return out


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
