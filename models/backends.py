"""One inference interface over our checkpoints, official .pt files, Darknet .cfg + .weights, TorchScript, ONNX and
OpenVINO exports.


`load_backend(path, device)` returns a `Backend`: call it on a (B, 3, H, W) float image batch in [0, 1]
and it returns the decoded (B, N, 5 + nc) tensor (PyTorch models also return their raw levels, as
`(decoded, raw)`). Exported files carry their class names and stride: TorchScript in the `_extra_files`
entry `config.json`, ONNX in `metadata_props` keys `names`, `stride`, `imgsz`, `batch`, `dynamic`, OpenVINO in
its rt_info (models/backend_openvino.py); ONNX Runtime and OpenVINO loaders live in models/backend_*.py.

Darknet weights (`.weights` with `cfg=`) run through the YOLOv5 pipeline like any PyTorch model (kind
'darknet'), or with `darknet_mode=True` through Darknet's own preprocessing, thresholds and NMS: then the
backend's `detect_image` takes one original image and returns its detections, and callers use it instead of
letterbox -> forward -> NMS.

"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from models.backend_compile import accelerate
from models.backend_export import ExportSession, export_postprocess, open_export, static_fields
from models.backend_openvino import is_openvino
from utils.cli import UserFileNotFoundError, UserValueError

TORCHSCRIPT_META = "config.json"
PT_SUFFIXES = (".pt", ".pth")
DARKNET_SUFFIX = ".weights"
EXPORT_SUFFIXES = (".torchscript", ".onnx", "_openvino_model/")
NATIVE_KINDS = ("pt", "darknet")  # PyTorch modules in this process (test-time augmentation, raw outputs)



@dataclass
class Backend:
    """A loaded model: `forward(im)` plus what callers need to prepare inputs and name classes."""
    forward: Callable[..., Any]
    names: list[str]
    stride: int
    kind: str  # 'pt', 'darknet', 'torchscript', 'onnx' or 'openvino'

    device: torch.device
    fp16: bool = False
    dynamic: bool = True  # accepts any batch size and any stride-multiple image size
    imgsz: tuple[int, int] | None = None  # fixed input (h, w) of a static export
    batch_size: int | None = None  # fixed batch of a static export
    model: torch.nn.Module | None = field(default=None, repr=False)
    has_objectness: bool = True  # decoded rows carry objectness (YOLOv5) or not (anchor-free; the head contract)
    test_cfg: dict | None = None  # the head's own post-processing (mmdet-family heads; utils/nms.head_nms_kwargs)
    # decoded (B, N, no), input (h, w), NMS keywords -> per-image (n, 6) rows: the head contract's `postprocess`
    # (an export: the same, rebuilt from its metadata's test_cfg); None: utils/nms.non_max_suppression
    postprocess: Callable[..., list] | None = field(default=None, repr=False)
    nms: dict | None = None  # in-graph NMS export (its conf/iou/max_det): forward gives per-image (n, 6) rows
    # One original BGR image, conf, IoU -> (n, 6) [x1, y1, x2, y2, conf, cls] in its pixels, when the backend has
    # its own end-to-end pipeline (Darknet mode); None: letterbox -> forward -> NMS as YOLOv5.
    detect_image: Callable[[np.ndarray, float, float], torch.Tensor] | None = field(default=None, repr=False)
    session: ExportSession | None = field(default=None, repr=False)  # the ONNX Runtime / OpenVINO session of forward

    def __call__(self, im: torch.Tensor, augment: bool = False):
        if augment and not self.pt:
            raise UserValueError(f"--augment (test-time augmentation) needs a PyTorch model, not a {self.kind} export")
        return self.forward(im, augment) if self.pt else self.forward(im)

    @property
    def pt(self) -> bool:
        return self.kind in NATIVE_KINDS

    @property
    def own_cpu_threads(self) -> bool:
        """The forward runs on a runtime's own CPU thread pool (ONNX Runtime, OpenVINO), not on torch's."""
        return self.kind in ("onnx", "openvino") and self.device.type == "cpu"


def export_metadata(names: list[str], stride: int, imgsz: tuple[int, int], batch: int, dynamic: bool,
                    has_objectness: bool = True, test_cfg: dict | None = None) -> dict:
    """The metadata stored in an exported file (`test_cfg` only for a head that states one)."""
    meta = {"names": list(names), "stride": int(stride), "imgsz": list(imgsz), "batch": int(batch),
            "dynamic": bool(dynamic), "has_objectness": bool(has_objectness)}
    return {**meta, "test_cfg": dict(test_cfg)} if test_cfg else meta


def _from_pytorch(model: torch.nn.Module, device: torch.device, half: bool, channels_last: bool,
                  kind: str = "pt") -> Backend:
    model = model.half() if half else model
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)

    chunk = CPU_MICROBATCH if device.type == "cpu" else 0

    def forward(im: torch.Tensor, augment: bool = False):
        im = im.contiguous(memory_format=fmt)
        if not chunk or im.shape[0] <= chunk:
            return model(im, augment=augment)
        return _cat_outputs([model(part, augment=augment) for part in im.split(chunk)])

    return Backend(forward, list(model.names), int(model.stride.max()), kind, device, fp16=half, model=model,
                   has_objectness=model.detect.has_objectness, test_cfg=getattr(model.detect, "test_cfg", None),
                   postprocess=getattr(model.detect, "postprocess", None))


def _from_darknet(path: Path, cfg: str | Path | None, device: torch.device, fuse: bool, half: bool,
                  channels_last: bool, darknet_mode: bool) -> Backend:
    """Darknet .cfg + .weights: the YOLOv5 pipeline, or (darknet_mode) Darknet's own, unfused as Darknet runs."""
    from models import load_model

    if not cfg:
        raise UserValueError(f"{path}: Darknet weights need --cfg (the matching .cfg file)")
    if not darknet_mode:
        return _from_pytorch(load_model(path, device=device, fuse=fuse, cfg=cfg), device, half, channels_last,
                             "darknet")
    model = load_model(path, device=device, cfg=cfg)
    backend = _from_pytorch(model, device, False, False, "darknet")
    backend.detect_image = lambda im0, conf, iou: darknet_rows(model, im0, conf, iou)
    return backend


def darknet_rows(model: torch.nn.Module, im0: np.ndarray, conf: float, iou: float) -> torch.Tensor:
    """Darknet's `detector test` on one BGR image as (n, 6) [x1, y1, x2, y2, conf, cls] rows, best first."""
    from utils.darknet_infer import darknet_detect

    rows = np.asarray(darknet_detect(model, im0, thresh=conf, nms=iou), dtype=np.float32).reshape(-1, 6)
    return torch.from_numpy(rows[:, [2, 3, 4, 5, 1, 0]].copy())  # (cls, prob, x1, y1, x2, y2) -> detect.py rows


# On CPU a large batch runs slower per image than small ones (activations of 32 images at 640 px no longer fit
# the caches): yolov5n at 672x672 takes 101 ms/img at batch 32 but 39-48 ms/img in micro-batches of 1-4 (yolov5s
# at 640: 137 ms/img at batch 16, 95-97 in micro-batches of 2-4), with outputs equal to ~1e-8. Micro-batches of 2
# made val.py fastest end to end (bench/val_speed.py: 12.3 s vs 13.0 s with 1 and 13.9 s with 4).
CPU_MICROBATCH = 2


def _cat_outputs(parts: list):
    """Join the decoded outputs of consecutive micro-batches. The raw level maps are dropped (None): only the
    loss reads them, and it runs on the model itself during training; copying them costs more than the forward."""
    return torch.cat([p[0] for p in parts]), None


def _from_torchscript(path: Path, device: torch.device, half: bool) -> Backend:
    extra = {TORCHSCRIPT_META: ""}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except RuntimeError as e:  # a truncated or corrupt zip archive
        raise UserValueError(f"{path}: not a loadable TorchScript file ({str(e).splitlines()[0][:200]})") from None
    if not extra[TORCHSCRIPT_META]:
        raise UserValueError(f"{path}: no '{TORCHSCRIPT_META}' metadata (not exported by export.py)")
    meta = json.loads(extra[TORCHSCRIPT_META])
    module = module.half() if half else module.float()
    module.eval()

    def forward(im: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = module(im)
        return out[0] if isinstance(out, (list, tuple)) else out

    return Backend(forward, meta["names"], meta["stride"], "torchscript", device, fp16=half, model=module,
                   postprocess=export_postprocess(meta.get("test_cfg")), **static_fields(meta))


def from_export_session(export: ExportSession, device: torch.device) -> Backend:
    """A Backend over an ONNX Runtime / OpenVINO session: torch tensors in and out, on `device`.

    `forward` must not refer to the Backend: a reference cycle would keep the runtime's session (and its thread
    pool) alive until a garbage collection, which a forked DataLoader worker may then run (utils/data/worker_fork.py)."""

    def forward(im: torch.Tensor):
        out = export.run(im.detach().cpu().numpy())
        if isinstance(out, list):  # in-graph NMS: per-image rows
            return [torch.from_numpy(rows).to(device) for rows in out]
        return torch.from_numpy(out).to(device).float()

    return Backend(forward, export.names, export.stride, export.kind, device, session=export,
                   postprocess=export_postprocess(export.test_cfg), **static_fields(export.meta))


def load_backend(path: str | Path, device: str | torch.device = "cpu", fuse: bool = True,
                 half: bool = False, channels_last: bool = True, cfg: str | Path | None = None,
                 darknet_mode: bool = False, runtime: str | None = None, compile: bool = False,
                 bf16: bool = False) -> Backend:
    """Load .pt (ours or official), Darknet .weights (with `cfg`), .torchscript, .onnx or an OpenVINO IR for
    inference (eval mode, fused by default). `darknet_mode`: Darknet weights run Darknet's own preprocessing and NMS
    (`detect_image`).

    `runtime` (the --backend flag) names the ONNX Runtime execution provider or the OpenVINO device; `compile` and
    `bf16` speed up PyTorch weights (models/backend_compile.py); `bf16` also runs OpenVINO IRs in bf16 on CPU.


    PyTorch models run in channels_last memory format by default: on CPU (oneDNN) yolov5n's batch forward
    takes ~40% less time than in the default layout, with the same results up to fp32 summation order.
    """
    path, device = Path(path), torch.device(device)
    if is_openvino(path):
        if compile:
            raise UserValueError(f"{path}: --compile applies to PyTorch weights, not OpenVINO exports")
        return from_export_session(open_export(path, runtime, bf16=bf16), device)
    if path.suffix.lower() == DARKNET_SUFFIX and not cfg:
        raise UserValueError(f"{path}: Darknet weights need --cfg (the matching .cfg file)")

    if not path.is_file():
        raise UserFileNotFoundError(f"weights not found: {path}")
    suffix = path.suffix.lower()
    if darknet_mode and suffix != DARKNET_SUFFIX:
        raise UserValueError(f"{path}: --darknet-mode needs Darknet .weights (with --cfg), not a '{suffix}' file")
    if suffix == DARKNET_SUFFIX:
        return _from_darknet(path, cfg, device, fuse, half, channels_last, darknet_mode)
    if suffix in PT_SUFFIXES:
        from models import load_model

        return accelerate(_from_pytorch(load_model(path, device=device, fuse=fuse), device, half, channels_last),
                          compile, bf16)
    if compile or bf16:
        raise UserValueError(f"{path}: --compile / --bf16 apply to PyTorch weights (--bf16 also to OpenVINO IRs), "
                             f"not {suffix} exports")
    if suffix == ".torchscript":
        return _from_torchscript(path, device, half)
    if suffix == ".onnx":
        return from_export_session(open_export(path, runtime, cuda=device.type == "cuda"), device)
    raise UserValueError(f"{path}: unsupported weights format '{suffix}' (expected one of "
                         f"{', '.join(PT_SUFFIXES + (DARKNET_SUFFIX,) + EXPORT_SUFFIXES)})")
