"""utils/nms_kernel: torchvision's NMS op without `import torchvision`, identical to torchvision.ops.nms."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from utils import nms_kernel

ROOT = Path(__file__).resolve().parents[1]


def _boxes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 300
    wh = torch.rand(n, 2, generator=g) * 80 + 1
    return torch.cat((xy, xy + wh), 1), torch.rand(n, generator=g)


def test_same_indices_as_torchvision() -> None:
    import torchvision

    for n, iou in ((1, 0.5), (50, 0.3), (2000, 0.45), (2000, 0.7)):
        boxes, scores = _boxes(n, n)
        kept = nms_kernel.nms(boxes, scores, iou)
        assert torch.equal(kept, torchvision.ops.nms(boxes, scores, iou))
        assert 0 < len(kept) <= n


def test_suppresses_by_hand() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # box 3 (0.95) suppresses 0 (IoU 0.9) and 1 (IoU 0.6); box 2 is apart
    assert nms_kernel.nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert nms_kernel.nms(boxes, scores, 0.95).tolist() == [3, 0, 1, 2]


def test_falls_back_to_the_package(monkeypatch) -> None:
    import torchvision

    monkeypatch.setattr(nms_kernel, "_load_extension", lambda: False)
    nms_kernel.nms_op.cache_clear()
    try:
        assert nms_kernel.nms_op() is torchvision.ops.nms
    finally:
        nms_kernel.nms_op.cache_clear()


def test_nms_does_not_import_torchvision() -> None:
    """The point of the module: detect.py's NMS costs no torchvision import (about 1 s of startup)."""
    code = ("import sys, torch; from utils.nms import non_max_suppression; "
            "p = torch.zeros(1, 10, 85); p[0, :, :4] = torch.tensor([50., 50, 20, 20]); p[0, :, 4:6] = 0.9; "
            "out = non_max_suppression(p); assert out[0].shape == (1, 6), out; "
            "assert 'torchvision' not in sys.modules, 'torchvision imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
