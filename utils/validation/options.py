"""ValOptions: every val.py option, defaults written once (the CLI and `validate()` both read them here)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

TASKS = ("val", "test", "speed", "study")
STUDY_SIZES = tuple(range(256, 1536 + 128, 128))


@dataclass
class ValOptions:
    """Command-line options of val.py (names as `run()` takes them)."""
    data: str = "data/shapes.yaml"
    weights: list[str] | str | None = None  # several only for --task speed / study
    batch_size: int = 32
    imgsz: int = 640
    conf_thres: float = 0.001
    iou_thres: float = 0.6
    max_det: int = 300
    task: str = "val"
    device: str = ""
    workers: int = 2
    single_cls: bool = False
    augment: bool = False
    verbose: bool = False
    save_txt: bool = False
    save_conf: bool = False
    save_json: bool = False
    project: str = "runs/val"
    name: str = "exp"
    exist_ok: bool = False
    half: bool = False
    runtime: str | None = None  # --backend: ONNX Runtime execution provider / OpenVINO device
    compile: bool = False  # PyTorch weights: torch.compile (inductor, frozen)
    bf16: bool = False  # CPU with AVX-512 BF16 / AMX: bf16 autocast (PyTorch) or bf16 inference (OpenVINO)
    cfg: str | None = None  # Darknet .cfg for .weights
    darknet_mode: bool = False  # Darknet .weights: Darknet's own resize, thresholds and NMS on each original image
    study_sizes: list[int] | None = None  # --task study image sizes (default 256..1536 step 128)

    def replace(self, **changes: Any) -> "ValOptions":
        """A copy with `changes`; an unknown name is an error naming it and the known ones."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown validation option(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)
