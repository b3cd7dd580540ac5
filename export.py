"""Export a detector to TorchScript, ONNX and/or OpenVINO, each verified by running it against PyTorch.

    python export.py --weights yolov5n.pt --include torchscript onnx openvino --imgsz 640 [--dynamic] [--simplify]
                     [--nms] [--int8 --data coco128.yaml] [--project DIR --name NAME]

Files are written next to the weights (`yolov5n.torchscript`, `yolov5n.onnx`), as YOLOv5 does, or into
project/name (incremented like the other scripts' runs) when --project or --name is given. A file appears
only once its check has passed. The exported graph outputs only the decoded (B, N, 5 + nc) tensor
(Detect.export); class names, stride, input size and whether the shape is dynamic are stored in the file
(see models/backends.py), so detect.py and val.py can load it. Every format is exported from the same model
state (`export_state`), whatever ran before it. `--nms` appends NMS to the ONNX graph (utils/export/onnx_nms.py:
boxes, scores, classes out); `openvino` writes `<stem>_openvino_model/`, with `--int8` instead an NNCF-quantized
`<stem>_int8_openvino_model/` calibrated on the --data images (utils/export/openvino.py). The runtimes and tools
are optional (requirements-deploy.txt).
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import asdict
from pathlib import Path

from utils.cli import run_main
from utils.export.exporter import (DecodedOnly, export_format, export_state, output_dir, output_gap, run,  # noqa: F401
                                   verify)
from utils.export.options import FORMATS, ExportOptions

LOGGER = logging.getLogger("yolo.export")
__all__ = ["DecodedOnly", "ExportOptions", "FORMATS", "export_format", "export_state", "main", "output_dir",
           "output_gap", "parse_opt", "run", "verify"]


def parse_opt(argv: list[str] | None = None) -> ExportOptions:
    d = ExportOptions()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=d.weights, help="checkpoint (.pt), or Darknet .weights with --cfg")
    p.add_argument("--cfg", default=d.cfg, help="Darknet .cfg for .weights files")
    p.add_argument("--include", nargs="+", default=d.include, choices=FORMATS)
    p.add_argument("--imgsz", "--img", "--img-size", nargs="+", type=int, default=d.imgsz, help="h [w]")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--dynamic", action="store_true", help="ONNX / OpenVINO: dynamic batch and image size")
    p.add_argument("--opset", type=int, default=d.opset)
    p.add_argument("--simplify", action="store_true", help="ONNX: simplify with onnxslim or onnxsim (optional)")
    p.add_argument("--nms", action="store_true", help="ONNX: NMS in the graph (boxes, scores, classes outputs)")
    p.add_argument("--conf-thres", type=float, default=d.conf_thres, help="--nms confidence threshold")
    p.add_argument("--iou-thres", type=float, default=d.iou_thres, help="--nms IoU threshold")
    p.add_argument("--max-det", type=int, default=d.max_det, help="--nms detections kept per image")
    p.add_argument("--multi-label", action="store_true", help="--nms: every class above conf per box (val.py)")
    p.add_argument("--int8", action="store_true", help="OpenVINO: INT8 by NNCF post-training quantization")
    p.add_argument("--data", default=d.data, help="data YAML of the --int8 calibration images")
    p.add_argument("--device", default=d.device)
    p.add_argument("--atol", type=float, default=d.atol, help="verification: max |diff| of scores (and boxes, + rtol)")
    p.add_argument("--rtol", type=float, default=d.rtol,
                   help="verification: boxes may also differ by rtol x the largest box value (pixels)")
    p.add_argument("--project", default=d.project, help="save to project/name (default: next to the weights)")
    p.add_argument("--name", default=d.name, help="save to project/name (project default: runs/export)")
    p.add_argument("--exist-ok", action="store_true", help="existing project/name ok, do not increment")
    return ExportOptions(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> dict[str, Path]:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run(**asdict(parse_opt(argv)))


if __name__ == "__main__":
    run_main(main)
