"""The export itself (export.py is its command line): formats, the state every export starts from, the check of each
file against PyTorch before it appears, and `run`."""
from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from models.backends import TORCHSCRIPT_META, export_metadata, load_backend
from models.head_protocol import DetectionHead
from utils.cli import UserValueError
from utils.export import openvino as ov_export
from utils.export.onnx_nms import add_nms, verify_nms
from utils.export.simplify import simplify as simplify_onnx
from utils.export.options import FORMATS, ExportOptions
from utils.image_size import as_hw
from utils.paths import increment_path

LOGGER = logging.getLogger("yolo.export")
# INT8 check on a real image: mean |score difference| (objectness and class columns) to PyTorch. Measured for yolov5n
# at 320 on 8 coco128 images: 0.0009-0.0018 (single scores differ by up to 0.27); a broken quantization is far above.
INT8_MEAN_ATOL = 0.01
# fp32 exports: box coordinates (pixels) may also differ by --rtol x the largest box value (output_gap), since other
# runtimes sum convolutions in another order (OpenVINO at 640: 1.1e-3 px on coordinates up to ~700, 1.6e-6 relative)


class DecodedOnly(torch.nn.Module):
    """The model's forward reduced to its decoded output tensor (what exported files return).

    Its own training flag follows the wrapped model's: torch.onnx.export restores the mode it found on the
    module it is given with a recursive `train(flag)`, so a wrapper left in training mode would switch the
    whole model back to training (per-level maps) after the export."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)

    def forward(self, im: torch.Tensor) -> torch.Tensor:
        return self.model(im)[0]


@contextmanager
def export_state(model: torch.nn.Module) -> Iterator[DecodedOnly]:
    """`model` in the state every export starts from (eval mode, heads returning only the decoded tensor; any head
    of the contract, models/head_protocol.py),
    wrapped in DecodedOnly; every module's training flag and every head's `export` are restored on exit."""
    training = {m: m.training for m in model.modules()}
    heads = {m: m.export for m in model.modules() if isinstance(m, DetectionHead)}
    model.eval()
    for head in heads:
        head.export = True
    try:
        yield DecodedOnly(model)
    finally:
        for m, flag in training.items():
            m.training = flag
        for head, flag in heads.items():
            head.export = flag


@contextmanager
def staged(path: Path) -> Iterator[Path]:
    """A temporary file beside `path` (same suffix) that becomes `path` only if the block succeeds."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def output_dir(weights: str | Path, project: str | None, name: str | None, exist_ok: bool) -> Path:
    """The weights' folder (YOLOv5's default) unless --project or --name is given: then project/name, incremented."""
    if project is None and name is None:
        return Path(weights).parent
    return increment_path(Path(project or "runs/export") / (name or "exp"), exist_ok=exist_ok, mkdir=True)


def export_torchscript(model: torch.nn.Module, im: torch.Tensor, path: Path, meta: dict) -> Path:
    """Trace the model and save it with its metadata in `_extra_files`."""
    traced = torch.jit.trace(model, im, strict=False)
    traced.save(str(path), _extra_files={TORCHSCRIPT_META: json.dumps(meta)})
    return path


def export_onnx(model: torch.nn.Module, im: torch.Tensor, path: Path, meta: dict, opset: int, dynamic: bool,
                simplify: bool) -> Path:
    """torch.onnx (TorchScript-based exporter) plus metadata_props; optional simplification; with meta['nms'],
    NMS appended to the graph."""
    import onnx

    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 1: "anchors"}}
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (im,), str(path), opset_version=opset, input_names=["images"],
                          output_names=["output0"], dynamic_axes=axes if dynamic else None, dynamo=False)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    if simplify:
        proto = simplify_onnx(proto)
    if meta.get("nms"):
        proto = add_nms(proto, meta["nms"]["max_det"], meta["has_objectness"], meta["nms"]["multi_label"])
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=json.dumps(v))
    onnx.save(proto, str(path))
    return path


def _max(t: torch.Tensor) -> float:
    return float(t.max()) if t.numel() else 0.0


def output_gap(got: torch.Tensor, expected: torch.Tensor, atol: float = 1e-3, rtol: float = 1e-4
               ) -> tuple[float, str | None]:
    """(max |got - expected|, why it is too large or None) for decoded outputs (B, N, 4 + k).

    Columns 0:4 are boxes in input pixels, the rest scores in [0, 1]. Float32 rounding of a box grows with its
    size: the anchor-free head's box side is a DFL expectation (up to reg_max - 1 = 15 bins) times the stride
    (up to 32), so a ~1e-5..1e-4 rounding difference of the raw logits becomes ~1e-2 px on a 640 px input (two
    correct PyTorch runs of yolov8n, fused channels_last against unfused: 2.7e-2 px with boxes up to 790 px;
    tests/test_export.py), well over a fixed 1e-3, while scores differ by ~7e-5. So boxes may differ by
    atol + rtol * S, S the largest |box value| of the output (0.08 px at S = 800 with the defaults), scores by
    atol. A wrong export (other weights, stride, decode or a missing sigmoid) is off by pixels or by whole
    score units, far outside either bound."""
    if got.shape != expected.shape:
        return float("inf"), f"output shape {tuple(got.shape)} != PyTorch {tuple(expected.shape)}"
    d = (got.float() - expected.float()).abs()
    if not torch.isfinite(d).all():
        return float("inf"), "output has non-finite values where PyTorch's has none"
    box_d, score_d = _max(d[..., :4]), _max(d[..., 4:])
    box_tol = atol + rtol * _max(expected[..., :4].abs())
    if box_d > box_tol:
        return box_d, f"boxes differ from PyTorch by {box_d:.3g} px (> {box_tol:.3g} = {atol} + {rtol} x image scale)"
    if score_d > atol:
        return score_d, f"scores differ from PyTorch by {score_d:.3g} (> {atol})"
    return max(box_d, score_d), None


def verify(path: Path, expected: torch.Tensor, im: torch.Tensor, atol: float, name: Path | None = None,
           rtol: float = 1e-4) -> float:
    """Run the exported file on `im` and compare with the PyTorch output (`output_gap`); returns the max
    |difference|. `name` is the file the messages name (default `path`)."""
    got = load_backend(path, "cpu")(im)
    diff, why = output_gap(got, expected, atol, rtol)
    if why:
        raise AssertionError(f"{name or path}: {why}")
    return diff


def _verify_input(batch: int, imgsz: tuple[int, int]) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, *imgsz, generator=g)


def export_format(fmt: str, model: torch.nn.Module, im: torch.Tensor, path: Path, meta: dict, opset: int = 17,
                  dynamic: bool = False, simplify: bool = False) -> Path:
    """Write `model` as `fmt` (torchscript or onnx) to `path`, from export_state and leaving the model as it was."""
    with export_state(model) as wrapped:
        if fmt == "torchscript":
            return export_torchscript(wrapped, im, path, meta)
        return export_onnx(wrapped, im, path, meta, opset, dynamic, simplify)


def export_openvino(model: torch.nn.Module, im: torch.Tensor, out: Path, meta: dict, opset: int, dynamic: bool,
                    int8_data: str | None = None, stem: str = "model") -> Path:
    """The OpenVINO IR folder `out` (stem.xml/.bin), converted from a temporary ONNX export; INT8-quantized when
    int8_data is set."""
    import tempfile

    onnx_meta = {k: v for k, v in meta.items() if k != "nms"} | {"nms": None}
    with tempfile.TemporaryDirectory() as d:
        onnx_path = export_format("onnx", model, im, Path(d) / "model.onnx", onnx_meta, opset, dynamic)
        ov_model = ov_export.convert(onnx_path, onnx_meta)
    if int8_data is not None:
        head = next(n for n, m in model.named_modules() if m is model.detect)
        ov_model = ov_export.quantize(ov_model, int8_data, tuple(meta["imgsz"]), head)
    return ov_export.save_ir(ov_model, out, stem)


def verify_int8(path: Path, model: torch.nn.Module, data: str, imgsz: tuple[int, int], name: Path | None = None
                ) -> float:
    """INT8 check on the first calibration image: mean |score difference| to PyTorch within INT8_MEAN_ATOL (the
    accuracy itself is val.py's mAP, which the README states); returns that mean. `name`: the file messages name."""
    name = name or path
    files, load = ov_export.calibration_images(data, imgsz, 1)
    x = torch.from_numpy(load(files[0]))
    with export_state(model) as wrapped, torch.inference_mode():
        want = wrapped(x)
    got = load_backend(path, "cpu")(x)
    if got.shape != want.shape:
        raise AssertionError(f"{name}: output shape {tuple(got.shape)} != PyTorch {tuple(want.shape)}")
    diff = float((got[..., 4:] - want[..., 4:]).abs().mean())
    if not math.isfinite(diff) or diff > INT8_MEAN_ATOL:
        raise AssertionError(f"{name}: INT8 scores differ from PyTorch by {diff:.3g} on average on {files[0]} "
                             f"(> {INT8_MEAN_ATOL})")
    return diff


def _nms_meta(opt: ExportOptions) -> dict | None:
    if not opt.nms:
        return None
    if not 0 < opt.conf_thres <= 1 or not 0 <= opt.iou_thres <= 1 or opt.max_det < 1:
        raise UserValueError(f"--nms needs 0 < --conf-thres <= 1, 0 <= --iou-thres <= 1 and --max-det >= 1 (got "
                             f"{opt.conf_thres}, {opt.iou_thres}, {opt.max_det})")
    return {"conf_thres": opt.conf_thres, "iou_thres": opt.iou_thres, "max_det": opt.max_det,
            "multi_label": opt.multi_label}


def _check_options(opt: ExportOptions) -> None:
    unknown = set(opt.include) - set(FORMATS)
    if unknown:
        raise UserValueError(f"--include {sorted(unknown)}: unknown format(s); choose from {FORMATS}")
    if opt.nms and "onnx" not in opt.include:
        raise UserValueError("--nms is an ONNX option: add onnx to --include")
    if opt.int8 and "openvino" not in opt.include:
        raise UserValueError("--int8 is an OpenVINO option: add openvino to --include")
    if opt.int8 and not opt.data:
        raise UserValueError("--int8 needs --data (a data YAML whose images calibrate the quantization)")


def _export_one(fmt: str, model, im, folder: Path, opt: ExportOptions, meta: dict, checks) -> Path:
    """Export and verify one format (checks: (expected, x), (expected2, x2)); the file appears only once verified."""
    (expected, x), (expected2, x2) = checks
    stem = Path(opt.weights).stem
    if fmt == "openvino":
        out = ov_export.ir_dir(folder, stem, opt.int8)
        with ov_export.staged_ir(out) as tmp:
            export_openvino(model, im, tmp, meta, opt.opset, opt.dynamic, opt.data if opt.int8 else None, stem)
            if opt.int8:
                diff = verify_int8(tmp, model, opt.data, tuple(meta["imgsz"]), out)
            else:
                diff = verify(tmp, expected, x, opt.atol, out, opt.rtol)
                if opt.dynamic:
                    diff = max(diff, verify(tmp, expected2, x2, opt.atol, out, opt.rtol))
        return _report(fmt, out, diff, "mean |score diff|" if opt.int8 else "max |diff|")
    path = folder / f"{stem}.{fmt}"
    fmt_meta = meta | {"nms": meta["nms"] if fmt == "onnx" else None}
    with staged(path) as tmp:
        export_format(fmt, model, im, tmp, fmt_meta, opt.opset, opt.dynamic, opt.simplify and fmt == "onnx")
        if fmt_meta["nms"]:
            diff = verify_nms(tmp, x, expected, fmt_meta["nms"], meta["has_objectness"], opt.atol)
            LOGGER.info(f"{fmt}: in-graph NMS equals utils/nms.py on {diff} detections")
            diff = 0.0
        else:
            diff = verify(tmp, expected, x, opt.atol, path, opt.rtol)
        if opt.dynamic and fmt == "onnx" and fmt_meta["nms"]:  # also another batch size and image shape
            verify_nms(tmp, x2, expected2, fmt_meta["nms"], meta["has_objectness"], opt.atol)
        elif opt.dynamic and fmt == "onnx":
            diff = max(diff, verify(tmp, expected2, x2, opt.atol, path, opt.rtol))
    return _report(fmt, path, diff)


def _report(fmt: str, path: Path, diff: float, what: str = "max |diff|") -> Path:
    size = sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
    LOGGER.info(f"{fmt}: saved {path} ({size / 1e6:.1f} MB), {what} vs PyTorch {diff:.2e}")
    return path


def run(weights="yolov5s.pt", include=("torchscript", "onnx"), imgsz=(640, 640), **kwargs) -> dict[str, Path]:
    """Export `weights` to each format in `include` (other options: ExportOptions' fields); returns {format: path}.
    Raises if a check fails."""
    from models import load_model

    opt = ExportOptions(weights=str(weights), include=list(include), imgsz=list(as_hw(imgsz)), **kwargs)
    _check_options(opt)
    imgsz = as_hw(opt.imgsz)
    model = load_model(weights, device=opt.device, fuse=True, cfg=opt.cfg)
    stride = int(model.stride.max())
    if any(s % stride for s in imgsz):
        raise UserValueError(f"--imgsz {imgsz} must be multiples of the model stride {stride}")
    im = torch.zeros(opt.batch_size, 3, *imgsz, device=opt.device)
    meta = export_metadata(model.names, stride, imgsz, opt.batch_size, opt.dynamic,
                           has_objectness=model.detect.has_objectness,
                           test_cfg=getattr(model.detect, "test_cfg", None)) | {"nms": _nms_meta(opt)}
    x = _verify_input(opt.batch_size, imgsz)
    x2 = _verify_input(opt.batch_size + 1, (imgsz[0] // 2, imgsz[1]))  # a second shape for dynamic exports
    with export_state(model) as wrapped, torch.inference_mode():
        checks = (wrapped(x), x), (wrapped(x2), x2)
    folder = output_dir(weights, opt.project, opt.name, opt.exist_ok)
    return {fmt: _export_one(fmt, model, im, folder, opt, meta, checks) for fmt in opt.include}
