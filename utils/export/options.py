"""ExportOptions: every export.py option, defaults written once (the CLI and `export.run()` both read them here)."""
from __future__ import annotations

from dataclasses import dataclass, field

FORMATS = ("torchscript", "onnx", "openvino")


@dataclass
class ExportOptions:
    """Command-line options of export.py."""
    weights: str = "yolov5s.pt"
    include: list[str] = field(default_factory=lambda: ["torchscript", "onnx"])
    imgsz: list[int] = field(default_factory=lambda: [640, 640])
    batch_size: int = 1
    dynamic: bool = False
    opset: int = 17
    simplify: bool = False
    nms: bool = False
    conf_thres: float = 0.25
    iou_thres: float = 0.45
    max_det: int = 300
    multi_label: bool = False
    int8: bool = False
    data: str | None = None
    device: str = "cpu"
    atol: float = 1e-3
    rtol: float = 1e-4
    project: str | None = None  # None (and no name): next to the weights
    name: str | None = None
    exist_ok: bool = False
    cfg: str | None = None  # Darknet .cfg for .weights
