"""export.py's verification bound: boxes within atol + rtol x the image scale, scores within atol."""
from __future__ import annotations

import copy

import pytest
import torch

from export import output_gap
from models.yolo import Model
from tests.shared_data import shared_path


@pytest.fixture(scope="module")
def two_correct_runs() -> tuple[torch.Tensor, torch.Tensor]:
    """yolov8n at 640 with the reference's calibrated weights (real score and box spread): unfused NCHW and
    fused channels_last, two correct computations that differ only by float32 rounding."""
    ref = torch.load(shared_path("reference/ultralytics", "yolov8n_forward.pt"), weights_only=True)
    m = Model("yolov8n.yaml")
    for sd, strict in ((ref["state_dict"], True), (ref["calib_changed"], False)):
        m.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=strict)
    m.eval()
    x = torch.rand(1, 3, 640, 640, generator=torch.Generator().manual_seed(0))
    fused = copy.deepcopy(m).fuse().to(memory_format=torch.channels_last)
    with torch.no_grad():
        return m(x)[0], fused(x.contiguous(memory_format=torch.channels_last))[0]


def test_float32_noise_of_v8_boxes_passes(two_correct_runs):
    expected, got = two_correct_runs
    box_gap = float((got - expected)[..., :4].abs().max())
    assert box_gap > 1e-3  # the old fixed bound would call this correct model a failed export
    assert float((got - expected)[..., 4:].abs().max()) < 2e-4 and expected[..., 4:].max() > 0.5
    diff, why = output_gap(got, expected)
    assert why is None and diff == pytest.approx(box_gap)


def test_wrong_exports_still_fail(two_correct_runs):
    expected, got = two_correct_runs
    shifted = got.clone()
    shifted[0, 100, 0] += 0.5  # one box half a pixel off
    assert "boxes differ" in output_gap(shifted, expected)[1]
    scaled = got.clone()
    scaled[0, -400:, :4] *= 2  # the last level decoded with a wrong stride
    assert "boxes differ" in output_gap(scaled, expected)[1]
    scores = got.clone()
    scores[0, 7, 10] += 0.01
    assert "scores differ" in output_gap(scores, expected)[1]
    logits = got.clone()
    logits[..., 4:] = torch.logit(got[..., 4:].clamp(1e-6, 1 - 1e-6))  # a missing sigmoid
    assert "scores differ" in output_gap(logits, expected)[1]
    nan = got.clone()
    nan[0, 0, 0] = float("nan")
    assert "non-finite" in output_gap(nan, expected)[1]
    assert "shape" in output_gap(got[:, :-1], expected)[1]
    # the bound follows the image scale: the same gap on an output of 10 px boxes is too large
    small = expected.clone()
    small[..., :4] = small[..., :4] / small[..., :4].abs().max() * 10
    off = small.clone()
    off[..., :4] += 0.01
    assert "boxes differ" in output_gap(off, small)[1]
