"""Convert Darknet models: cfg + .weights -> our checkpoint (+ the generated YAML), and checkpoint -> .weights (+ cfg).

    python tools/darknet_convert.py to-pt --cfg yolov4-tiny.cfg --weights yolov4-tiny.weights \\
        --names coco.names --out yolov4-tiny.pt [--yaml models/darknet/yolov4-tiny.yaml]
    python tools/darknet_convert.py to-weights --ckpt best.pt --out best.weights --cfg-out best.cfg

The checkpoint keeps the .weights header under `darknet_header`, so writing back a converted file
gives the original bytes; `--cfg-out` writes the matching cfg (needed once a fine-tuned model's classes or
anchors differ from the original cfg's).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import logging
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):  # `python tools/darknet_convert.py`: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.build import load_checkpoint_dict, model_from_cfg, model_from_checkpoint  # noqa: E402
from models.checkpoint import save_checkpoint  # noqa: E402
from models.darknet_cfg import cfg_to_yaml, write_yaml  # noqa: E402
from models.darknet_cfg_writer import write_cfg  # noqa: E402
from utils.darknet_weights import Header, load_weights, save_weights  # noqa: E402

LOGGER = logging.getLogger("yolo")


def read_names(path: str | Path | None, nc: int) -> list[str]:
    """Class names, one per line (Darknet's .names), or '0'..'nc-1'; the count must equal nc."""
    if path is None:
        return [str(i) for i in range(nc)]
    names = [s.strip() for s in Path(path).read_text().splitlines() if s.strip()]
    if len(names) != nc:
        raise ValueError(f"{path}: {len(names)} names but the cfg has {nc} classes")
    return names


def to_checkpoint(cfg: str | Path, weights: str | Path, out: str | Path, names: str | Path | None = None,
                  yaml_out: str | Path | None = None) -> Path:
    """cfg + .weights -> our checkpoint (and the YAML, when asked). Returns the checkpoint path."""
    d = cfg_to_yaml(cfg)
    if yaml_out:
        LOGGER.info(f"YAML written to {write_yaml(d, yaml_out)}")
    d["yaml_file"] = str(cfg)
    model = model_from_cfg(d)
    report = load_weights(model, weights)
    LOGGER.info(f"{weights}: {report.floats:,} floats into {len(report.convs)} convolutions; "
                f"{len(report.skipped)} parameter-free layers skipped: {report.skipped}")
    # meta as plain strings: checkpoint.make_checkpoint's default stores torch.__version__ as a TorchVersion
    # object, which torch.load(weights_only=True) refuses.
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "torch": str(torch.__version__),
            "darknet_cfg": str(cfg), "darknet_weights": str(weights)}
    return save_checkpoint(out, model, read_names(names, d["nc"]), meta=meta,
                           darknet_header=dataclasses.asdict(report.header))


def to_weights(ckpt: str | Path, out: str | Path, cfg_out: str | Path | None = None) -> Path:
    """Our checkpoint of a Darknet-layout model -> .weights (the original header when the checkpoint kept it),
    and its .cfg when asked."""
    c = load_checkpoint_dict(ckpt)
    model = model_from_checkpoint(c, str(ckpt))
    header = Header(**c["darknet_header"]) if c.get("darknet_header") else Header()
    if cfg_out:
        LOGGER.info(f"cfg written to {write_cfg(model, cfg_out)}")
    return save_weights(model, out, header)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Darknet cfg + .weights <-> our checkpoint.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("to-pt", help="cfg + .weights -> checkpoint (+ YAML)")
    a.add_argument("--cfg", required=True, help="Darknet .cfg")
    a.add_argument("--weights", required=True, help="Darknet .weights")
    a.add_argument("--names", default=None, help="class names file (e.g. coco.names)")
    a.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    a.add_argument("--yaml", default=None, help="also write the generated model YAML here")
    b = sub.add_parser("to-weights", help="checkpoint -> .weights (+ cfg)")
    b.add_argument("--ckpt", required=True, help="our checkpoint of a model converted from a Darknet cfg")
    b.add_argument("--out", required=True, help=".weights file to write")
    b.add_argument("--cfg-out", default=None, help="also write the model's Darknet .cfg here")
    opt = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if opt.cmd == "to-pt":
        LOGGER.info(f"saved {to_checkpoint(opt.cfg, opt.weights, opt.out, opt.names, opt.yaml)}")
    else:
        LOGGER.info(f"saved {to_weights(opt.ckpt, opt.out, opt.cfg_out)}")


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
