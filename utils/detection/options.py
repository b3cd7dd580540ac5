"""DetectOptions: every detect.py option, defaults written once (the CLI and `detect.run()` both read them here)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DetectOptions:
    """Options of detect.py (names as `run()` takes them); imgsz: h [w], read by utils.image_size.as_hw."""
    weights: str = "yolov5s.pt"
    source: str = "data/images"
    cfg: str | None = None
    imgsz: list[int] = field(default_factory=lambda: [640])
    conf_thres: float = 0.25
    iou_thres: float = 0.45
    max_det: int = 1000
    device: str = ""
    view_img: bool = False
    save_txt: bool = False
    save_conf: bool = False
    save_crop: bool = False
    nosave: bool = False
    classes: list[int] | None = None
    agnostic_nms: bool = False
    augment: bool = False
    project: str = "runs/detect"
    name: str = "exp"
    exist_ok: bool = False
    line_thickness: int = 3
    hide_labels: bool = False
    hide_conf: bool = False
    half: bool = False
    vid_stride: int = 1
    batch_size: int = 8
    darknet_mode: bool = False  # Darknet .weights: Darknet's own preprocessing and NMS (detect_image)
    runtime: str | None = None  # --backend: ONNX Runtime execution provider / OpenVINO device
    compile: bool = False  # PyTorch weights: torch.compile (inductor, frozen)
    bf16: bool = False  # PyTorch weights on CPU: bf16 autocast (AVX-512 BF16 / AMX)
