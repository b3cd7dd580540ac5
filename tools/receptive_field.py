"""Receptive field of every layer of a model YAML graph, and the effective field from input gradients.

  python tools/receptive_field.py --cfg yolov5s.yaml [--erf-layers 17 20 23] [--imgsz 640]
Prints the table (layer, from, type, receptive field, stride; then each Detect input) and writes it to
runs/analyze/receptive_field/<name>/receptive_field.txt with one erf_layer<i>.png per --erf-layers entry
(|d centre unit / d input| on the randomly initialised model, theoretical field drawn as a rectangle).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.analysis.common import add_model_args, add_output_args, analysis_model, output_dir, save_text  # noqa: E402
from utils.analysis.effective_rf import effective_rf, plot_erf  # noqa: E402
from utils.analysis.receptive_field import receptive_fields  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--imgsz", type=int, default=640, help="input size of the effective-field pictures")
    p.add_argument("--erf-layers", type=int, nargs="*", default=None,
                   help="layers whose effective field is drawn (default: the Detect inputs)")
    p.add_argument("--erf-samples", type=int, default=4, help="random inputs averaged per picture")
    add_output_args(p, "receptive_field")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    opt = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = analysis_model(opt.cfg, opt.weights)
    report = receptive_fields(model)
    out = output_dir(opt.project, opt.name, opt.exist_ok)
    print(report.table())
    save_text(out / "receptive_field.txt", report.table())
    layers = opt.erf_layers if opt.erf_layers is not None else [i for i, _ in report.detect_inputs]
    for i in layers:
        erf = effective_rf(model, i, opt.imgsz, opt.erf_samples)
        plot_erf(erf, report.layers[i].rf, out / f"erf_layer{i}.png")
    return out


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
