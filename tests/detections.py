"""Detections compared column by column: class exact, confidence to 1e-4, boxes to a stated pixel tolerance."""
from __future__ import annotations

import torch

CONF_ATOL = 1e-4


def assert_same_detections(got, want, box_px: float, conf_atol: float = CONF_ATOL, what: str = "") -> None:
    """(n, 6) [x1, y1, x2, y2, conf, cls] tensors or arrays (detect.run's) in the same (NMS) order: the same count
    and classes, confidences within `conf_atol`, every box coordinate within `box_px` pixels."""
    got, want = torch.as_tensor(got), torch.as_tensor(want)
    assert got.shape == want.shape, f"{what}: {tuple(got.shape)} detections != {tuple(want.shape)}"
    assert torch.equal(got[:, 5], want[:, 5]), f"{what}: classes {got[:, 5].tolist()} != {want[:, 5].tolist()}"
    torch.testing.assert_close(got[:, 4], want[:, 4], atol=conf_atol, rtol=0, msg=lambda m: f"{what} conf: {m}")
    torch.testing.assert_close(got[:, :4], want[:, :4], atol=box_px, rtol=0, msg=lambda m: f"{what} boxes: {m}")
