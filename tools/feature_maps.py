"""Feature maps: for one image, the first K channels of chosen layers' outputs saved as image grids.

  python tools/feature_maps.py --weights yolov5s.pt --source image.jpg --layers 2 4 6 9 17 --k 32
Writes runs/analyze/feature_maps/<name>/layer<i>_features.png (input beside the channel grid, each
channel scaled to its own min..max) and features.txt (shape and statistics of each captured map).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.analysis.common import (add_model_args, add_output_args, analysis_model, load_image_tensor,  # noqa: E402
                                   output_dir, save_text)
from utils.analysis.feature_maps import capture, save_feature_maps  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--source", required=True, help="one image file")
    p.add_argument("--imgsz", type=int, default=640, help="letterboxed input size")
    p.add_argument("--layers", type=int, nargs="+", default=None,
                   help="rows to show (default: every row that feeds the Detect head)")
    p.add_argument("--k", type=int, default=32, help="channels per layer")
    p.add_argument("--cols", type=int, default=8, help="channels per grid row")
    add_output_args(p, "feature_maps")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    opt = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = analysis_model(opt.cfg, opt.weights)
    layers = opt.layers
    if layers is None:
        head = model.detect
        layers = list(head.f) if head is not None and isinstance(head.f, list) else [len(model.model) - 2]
    x, im = load_image_tensor(opt.source, opt.imgsz, int(model.stride.max()))
    maps = capture(model, x, layers)
    out = output_dir(opt.project, opt.name, opt.exist_ok)
    save_feature_maps(maps, out, opt.k, opt.cols, im, {i: model.model[i].type.split(".")[-1] for i in maps})
    lines = [f"{opt.source} at {tuple(x.shape[2:])}"]
    for i, y in sorted(maps.items()):
        lines.append(f"layer {i:>3} {model.model[i].type.split('.')[-1]:<12} shape {tuple(y.shape[1:])} "
                     f"mean {y.mean():.4f} std {y.std():.4f} zero {(y == 0).float().mean():.1%}")
    print("\n".join(lines))
    save_text(out / "features.txt", "\n".join(lines))
    return out


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
