"""`export.py --include openvino`: an OpenVINO IR folder (`<stem>_openvino_model/<stem>.xml + .bin`) converted from
the verified ONNX graph, fp32 weights, metadata in the IR's rt_info; `--int8` quantizes it after training with NNCF
on calibration images from the data YAML (`<stem>_int8_openvino_model/`).

INT8 keeps the Detect head's box decoding (sigmoid, grid and anchor arithmetic after the last convolutions) in
floating point (NNCF's ignored scope, `head_ignored_scope`); the convolutions and the blocks' residual adds and
concatenations are quantized.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from models.backend_openvino import write_metadata
from utils.cli import UserValueError

CALIBRATION_IMAGES = 300  # NNCF's default subset size; fewer if the split has fewer images


def ir_dir(folder: Path, stem: str, int8: bool) -> Path:
    """Where the IR of `stem` goes (ultralytics' folder names)."""
    return folder / f"{stem}{'_int8' if int8 else ''}_openvino_model"


def convert(onnx_path: Path, meta: dict):
    """The ov.Model of an ONNX file, with the export metadata in its rt_info."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    write_metadata(model, meta)
    return model


def calibration_images(data: str, imgsz: tuple[int, int], limit: int = CALIBRATION_IMAGES):
    """Letterboxed (1, 3, H, W) float32 [0, 1] RGB arrays of the data YAML's val images (train if it has none)."""
    from utils.data.augment import letterbox
    from utils.downloads import ensure_dataset
    from utils.data.files import list_image_files
    from utils.data.image_check import read_image

    cfg = ensure_dataset(data)
    files = list_image_files(cfg.sources("val") if cfg.val else cfg.sources("train"))[:limit]

    def load(f: str) -> np.ndarray:
        im = letterbox(read_image(f), imgsz, auto=False)[0]
        return np.ascontiguousarray(im[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255

    return files, load


def head_ignored_scope(head: str):
    """NNCF's ignored scope for the Detect head named `head` (e.g. 'model.24'): every operation under it except
    its convolutions (YOLOv5 `m.i`, anchor-free `cv2`/`cv3`), and the decode's operation types, which OpenVINO's
    conversion may rename."""
    import re

    import nncf

    prefix = re.escape(f"/model/{head}/")
    return nncf.IgnoredScope(patterns=[f".*{prefix}(?!m\\.\\d|cv2|cv3).*"],
                             types=["Sigmoid", "Multiply", "Power", "Subtract", "Softmax"], validate=False)


def quantize(model, data: str, imgsz: tuple[int, int], head: str, limit: int = CALIBRATION_IMAGES):
    """NNCF post-training INT8 quantization of an ov.Model (static batch 1 calibration inputs)."""
    import nncf

    if not data:
        raise UserValueError("--int8 needs --data (a data YAML whose images calibrate the quantization)")
    files, load = calibration_images(data, imgsz, limit)
    dataset = nncf.Dataset(files, load)
    ignored = head_ignored_scope(head)
    import logging

    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.WARNING)  # one INFO line per operation it leaves in float
    try:
        return nncf.quantize(model, dataset, preset=nncf.QuantizationPreset.MIXED, subset_size=len(files),
                             ignored_scope=ignored)
    finally:
        nncf_log.setLevel(level)


@contextmanager
def staged_ir(out: Path) -> Iterator[Path]:
    """A staging folder beside `out` (its name still ends in _openvino_model, so the loaders take it) that becomes
    `out` only if the block succeeds."""
    tmp = out.with_name(f".{os.getpid()}.{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_ir(model, folder: Path, stem: str) -> Path:
    """Write the IR as folder/stem.xml + .bin (fp32 weights)."""
    import openvino as ov

    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(folder / f"{stem}.xml"), compress_to_fp16=False)
    return folder
