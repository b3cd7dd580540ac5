"""What every exported-file backend shares: reading and checking its metadata, checking an input against a static
export, turning an in-graph-NMS output (boxes, scores, classes) into detect/val's (n, 6) rows, and the NumPy-level
`ExportSession` each runtime's loader returns. Nothing here imports torch: detect.py runs exports without it."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from utils.cli import UserFileNotFoundError, UserValueError

REQUIRED_META = ("names", "stride", "imgsz")
METADATA_KEYS = ("names", "stride", "imgsz", "batch", "dynamic", "has_objectness", "nms", "test_cfg")


def parse_metadata(path: Path, raw: dict[str, str]) -> dict:
    """JSON-decoded metadata of an export; a clear error naming the file when a required key is absent or bad."""
    missing = [k for k in REQUIRED_META if k not in raw]
    if missing:
        raise UserValueError(f"{path}: no {', '.join(repr(k) for k in missing)} in its metadata "
                             f"(not exported by export.py, or the metadata was stripped)")
    try:
        meta = {k: json.loads(v) for k, v in raw.items() if k in METADATA_KEYS}
    except json.JSONDecodeError as e:
        raise UserValueError(f"{path}: metadata is not valid JSON ({e})") from None
    if not isinstance(meta["names"], list) or not meta["names"]:
        raise UserValueError(f"{path}: metadata 'names' must be a non-empty list of class names")
    if not isinstance(meta["imgsz"], list) or len(meta["imgsz"]) != 2:
        raise UserValueError(f"{path}: metadata 'imgsz' must be [height, width], got {meta['imgsz']!r}")
    return meta


def check_output_width(path: Path, meta: dict, width: int | None) -> None:
    """The decoded output's last dimension must be 4 (+1 objectness) + number of names (when the graph fixes it)."""
    if width is None or meta.get("nms"):
        return
    want = 4 + int(bool(meta.get("has_objectness", True))) + len(meta["names"])
    if width != want:
        raise UserValueError(f"{path}: output rows have {width} values but its metadata's {len(meta['names'])} "
                             f"names need {want}: the file does not match its metadata")


def check_input_shape(path: Path, meta: dict, shape: list) -> None:
    """A static graph's declared input (B, 3, H, W) must agree with its metadata's batch and imgsz."""
    if meta.get("dynamic") or len(shape) != 4 or not all(isinstance(s, int) for s in shape):
        return
    if tuple(shape[2:]) != tuple(meta["imgsz"]) or ("batch" in meta and shape[0] != meta["batch"]):
        raise UserValueError(f"{path}: graph input {tuple(shape)} does not match its metadata "
                             f"(batch {meta.get('batch')}, imgsz {meta['imgsz']})")


def check_call(path: Path, meta: dict, im) -> None:
    """An input that a static export cannot take: a clear error instead of a runtime's shape failure."""
    if im.ndim != 4 or im.shape[1] != 3:
        raise UserValueError(f"{path}: input must be (B, 3, H, W), got {tuple(im.shape)}")
    if meta.get("dynamic"):
        stride = int(meta["stride"])
        if im.shape[2] % stride or im.shape[3] % stride:
            raise UserValueError(f"{path}: input {tuple(im.shape[2:])} is not a multiple of the stride {stride}")
        return
    want = (int(meta.get("batch", im.shape[0])), 3, *meta["imgsz"])
    if tuple(im.shape) != want:
        raise UserValueError(f"{path}: static export takes input {want}, got {tuple(im.shape)} "
                             f"(export again with --dynamic or another --imgsz/--batch-size)")


def nms_rows(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> list[np.ndarray]:
    """(B, K, 4), (B, K), (B, K) padded NMS outputs -> per image (n, 6) float32 [x1, y1, x2, y2, conf, cls]
    (padding: class -1)."""
    out = []
    for b, s, c in zip(boxes, scores, classes):
        keep = c >= 0
        rows = np.concatenate([b[keep], s[keep, None], c[keep, None].astype(np.float32)], 1)
        out.append(rows.astype(np.float32))
    return out


@dataclass
class ExportSession:
    """An exported file loaded in its runtime: `run` maps a float32 (B, 3, H, W) array in [0, 1] to the decoded
    (B, N, no) array, or for an in-graph NMS export (thresholds from `nms`) to per-image (n, 6) rows.

    The fields mirror models.backends.Backend's, which wraps a session for torch callers (val.py, detect.py on an
    accelerator); detect.py on the CPU uses the session itself, without torch. `infer(im, nms)` is the runtime's call;
    it gets the thresholds as an argument, not by referring to the session (a reference cycle would keep the runtime
    alive until a garbage collection, which a forked DataLoader worker may run: utils/data/worker_fork.py)."""
    infer: Callable[[np.ndarray, "dict | None"], "np.ndarray | list[np.ndarray]"] = field(repr=False)
    names: list[str]
    stride: int
    kind: str  # 'onnx' or 'openvino'
    path: Path
    meta: dict = field(repr=False)
    own_cpu_threads: bool = True  # the runtime computes on this machine's CPU, on its own thread pool
    dynamic: bool = True
    imgsz: tuple[int, int] | None = None
    batch_size: int | None = None
    has_objectness: bool = True
    nms: dict | None = None
    test_cfg: dict | None = None
    static_shapes: object = field(default=None, repr=False)  # OpenVINO, dynamic IR: models/openvino_shapes.StaticShapes

    def run(self, im: np.ndarray) -> "np.ndarray | list[np.ndarray]":
        return self.infer(im, self.nms)


def open_export(path: Path, runtime: str | None = None, bf16: bool = False, cuda: bool = False) -> ExportSession:
    """An ONNX file (ONNX Runtime; `cuda`: for a cuda device) or OpenVINO IR (`bf16`: on the CPU) in its runtime."""
    from models.backend_openvino import is_openvino, open_openvino

    if is_openvino(path):
        return open_openvino(path, runtime, bf16=bf16)
    if path.suffix.lower() != ".onnx":
        raise UserValueError(f"{path}: not an ONNX file or OpenVINO IR")
    if bf16:
        raise UserValueError(f"{path}: --bf16 applies to PyTorch weights and OpenVINO IRs, not ONNX files")
    if not path.is_file():
        raise UserFileNotFoundError(f"weights not found: {path}")
    from models.backend_onnxruntime import open_onnxruntime

    return open_onnxruntime(path, runtime, cuda)


def static_fields(meta: dict) -> dict:
    """Backend / ExportSession fields that come from an export's metadata."""
    dynamic = bool(meta.get("dynamic", False))
    return {"dynamic": dynamic, "imgsz": None if dynamic else tuple(meta["imgsz"]),
            "batch_size": None if dynamic else int(meta.get("batch", 1)),
            "has_objectness": bool(meta.get("has_objectness", True)), "nms": meta.get("nms"),
            "test_cfg": meta.get("test_cfg")}


def export_postprocess(test_cfg: dict | None):
    """An exported dense head's post-processing: the head contract's (mmdet's, per level) from the test_cfg its
    metadata stores (models/dense_heads/base.py), on the decoded rows the export outputs; None: generic NMS."""
    if not test_cfg:
        return None
    if "strides" not in test_cfg:
        raise UserValueError("this export's test_cfg has no level layout (strides, priors_per_cell): it was made "
                             "before the per-level post-processing; export it again")
    from functools import partial

    from utils.dense.decoded_postprocess import postprocess_decoded

    return partial(postprocess_decoded, settings=dict(test_cfg))


def detections(backend, pred, conf_thres: float, iou_thres: float, classes=None, agnostic: bool = False,
               multi_label: bool = False, max_det: int = 300, hw=None, **nms_kw) -> list:
    """Per-image (n, 6) detections of a forward's output for an (h, w) input `hw`: the head's own post-processing
    (`backend.postprocess`, the head contract's; mmdet families), utils/nms.py (utils/nms_numpy.py for the NumPy
    output of an ExportSession), or for an in-graph NMS export its
    rows (the thresholds were fed to the graph: `with_thresholds`), cut to `classes` and `max_det`. Per-class NMS
    makes the class filter after NMS equal to YOLOv5's before it; rows come sorted by score, so the cut keeps the
    best."""
    post = getattr(backend, "postprocess", None)
    if post is not None and not getattr(backend, "nms", None):
        if hw is None:
            raise ValueError("the head's own post-processing needs the input size hw=(h, w)")
        if isinstance(pred, (list, tuple)):  # a PyTorch model's (decoded, raw)
            pred = pred[0]
        return post(pred, tuple(hw), conf_thres=conf_thres, iou_thres=iou_thres, classes=classes, agnostic=agnostic,
                    max_det=max_det)
    if not getattr(backend, "nms", None) and isinstance(pred, np.ndarray):  # an ExportSession's output
        from utils.nms_numpy import non_max_suppression_numpy

        if multi_label:
            raise ValueError("NumPy NMS keeps one label per box (detect.py's rule); multi_label needs utils/nms.py")
        return non_max_suppression_numpy(pred, conf_thres, iou_thres, classes, agnostic, max_det, **nms_kw)
    if not getattr(backend, "nms", None):
        from utils.nms import non_max_suppression

        return non_max_suppression(pred, conf_thres, iou_thres, classes, agnostic, multi_label=multi_label,
                                   max_det=max_det, **nms_kw)
    if agnostic:
        raise UserValueError("--agnostic-nms / --single-cls cannot change an export's in-graph NMS: export without "
                             "--nms")
    return [in_classes(rows, classes)[:max_det] for rows in pred]


def in_classes(rows, classes):
    """The (n, 6) rows (tensor or array) whose class is one of `classes` (None: all)."""
    if classes is None:
        return rows
    if isinstance(rows, np.ndarray):
        return rows[np.isin(rows[:, 5], np.asarray(classes, dtype=rows.dtype))]
    import torch

    return rows[(rows[:, 5:6] == torch.tensor(classes, dtype=rows.dtype, device=rows.device)).any(1)]


def with_thresholds(backend, conf_thres: float, iou_thres: float, multi_label: bool):
    """An in-graph NMS backend set to run at these thresholds (a note when its baked label mode differs)."""
    import logging

    if getattr(backend, "nms", None):
        if bool(backend.nms.get("multi_label")) != multi_label:
            logging.getLogger("yolo").info(
                f"in-graph NMS export keeps {'every class' if backend.nms.get('multi_label') else 'the best class'} "
                f"per box (export --multi-label decides), unlike this script's default")
        backend.nms = backend.nms | {"conf_thres": conf_thres, "iou_thres": iou_thres}
        if getattr(backend, "session", None) is not None:  # a Backend over an ExportSession: the graph's inputs
            backend.session.nms = backend.nms
    return backend
