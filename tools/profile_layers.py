"""Per-layer inference profile: median time, parameters and GFLOPs of every YAML row, sorted, with a bar chart.

  python tools/profile_layers.py --cfg yolov5s.yaml --imgsz 640 --runs 10 [--sort ms|gflops|params|i]
Writes runs/analyze/profile_layers/<name>/profile.txt and profile.png; the last line compares the sum of
the rows' times with the whole model's forward.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.analysis.common import add_model_args, add_output_args, analysis_model, output_dir, save_text  # noqa: E402
from utils.analysis.profile import plot_profile, profile_rows  # noqa: E402
from utils.torch_utils import select_device  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--imgsz", type=int, default=640, help="square input size")
    p.add_argument("--batch", type=int, default=1, help="batch size of the timed input")
    p.add_argument("--runs", type=int, default=10, help="timed runs per row (median kept)")
    p.add_argument("--sort", default="ms", choices=("ms", "gflops", "params", "i"), help="table order")
    p.add_argument("--device", default="cpu", help="cpu or a CUDA index")
    add_output_args(p, "profile_layers")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    opt = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = analysis_model(opt.cfg, opt.weights).to(select_device(opt.device))
    prof = profile_rows(model, opt.imgsz, opt.runs, opt.batch)
    out = output_dir(opt.project, opt.name, opt.exist_ok)
    print(prof.table(opt.sort))
    save_text(out / "profile.txt", prof.table(opt.sort))
    plot_profile(prof, out / "profile.png")
    return out


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
