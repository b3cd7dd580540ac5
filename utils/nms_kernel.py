"""torchvision's NMS kernel without importing the torchvision package.

`import torchvision` costs about a second (its ops package pulls in torch._dynamo), which is a sixth of
detect.py's whole run on a small CPU. The kernel itself lives in torchvision's compiled extension, so this
module loads just that library into torch.ops and calls `torch.ops.torchvision.nms`, the op that
`torchvision.ops.nms` itself calls. Any surprise (another torchvision layout, a failed load) falls back to the
full `import torchvision`.
"""
from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import torch

EXTENSION_NAMES = ("_C_stable", "_C")  # torchvision >= 0.25 / older releases
EXTENSION_SUFFIXES = (".so", ".pyd")


def _load_extension() -> bool:
    """Load torchvision's compiled ops into torch.ops; True when torchvision::nms is then available."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    folder = Path(spec.submodule_search_locations[0])
    for name in EXTENSION_NAMES:
        for path in [p for s in EXTENSION_SUFFIXES for p in folder.glob(f"{name}*{s}")]:
            try:
                torch.ops.load_library(str(path))
            except (OSError, RuntimeError):
                continue
            if hasattr(torch.ops.torchvision, "nms"):
                return True
    return False


@cache
def nms_op():
    """The callable (boxes (n, 4) xyxy, scores (n,), iou_threshold) -> kept indices, by descending score."""
    try:
        if _load_extension():
            return torch.ops.torchvision.nms
    except Exception:  # noqa: BLE001 - any failure of the shortcut: use the package as usual
        pass
    import torchvision

    return torchvision.ops.nms


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """torchvision.ops.nms: indices of the boxes kept, in decreasing order of score."""
    return nms_op()(boxes, scores, iou_threshold)
