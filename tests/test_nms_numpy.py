"""utils/nms_numpy.py (the NMS of exports run without torch) against the official YOLOv5 and ultralytics NMS outputs,
and row for row against utils/nms.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.shared_data import shared_path
from tests.test_nms import cases, pred  # noqa: F401 - the official NMS cases, as fixtures
from tests.test_v8_nms import _sorted_rows
from utils.nms import non_max_suppression
from utils.nms_numpy import greedy_nms, non_max_suppression_numpy

SINGLE_LABEL_CASES = ["val_single_label", "detect", "detect_agnostic", "detect_classes0"]


@pytest.fixture(scope="module")
def pred_np(pred: torch.Tensor) -> np.ndarray:
    """The official (4, 25200, 85) prediction (tests/test_nms.py's fixture) as an array."""
    return pred.numpy()


def _kwargs(kw: dict) -> dict:
    assert not kw.get("multi_label")
    return {k: v for k, v in kw.items() if k not in ("multi_label", "labels")}


@pytest.mark.parametrize("name", SINGLE_LABEL_CASES)
def test_reproduces_official_yolov5_cases(cases: dict, pred_np: np.ndarray, name: str) -> None:
    out = non_max_suppression_numpy(pred_np, **_kwargs(cases["nms_kwargs"][name]))
    expected = cases["nms"][name]
    assert len(out) == len(expected) == 4
    for got, want in zip(out, expected):
        assert got.dtype == np.float32 and got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want.numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", SINGLE_LABEL_CASES)
def test_rows_equal_utils_nms(cases: dict, pred_np: np.ndarray, name: str) -> None:
    """Exactly the rows of the torch NMS (same order, same float32 values), with max_det and a class filter too."""
    kw = _kwargs(cases["nms_kwargs"][name])
    assert sum(len(d) for d in non_max_suppression_numpy(pred_np, **kw)) > 0 or name == "detect_classes0"
    for extra in ({}, {"max_det": 5}, {"classes": [2, 45, 50]}):
        ours = non_max_suppression_numpy(pred_np, **(kw | extra))
        theirs = non_max_suppression(torch.from_numpy(pred_np), **(kw | extra), time_limit=float("inf"))
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b.numpy())


@pytest.mark.parametrize("flagset", ["predict", "predict_iou045", "conf085_iou045"])
def test_anchor_free_rows_match_ultralytics(flagset: str) -> None:
    """Heads without objectness (YOLOv8 / YOLO11): ultralytics 8.4's own NMS results on its model's output."""
    ref = "reference/ultralytics"
    cases = torch.load(shared_path(ref, "nms_cases_v8.pt"), weights_only=True)
    fwd = torch.load(shared_path(ref, "yolov8n_forward.pt"), weights_only=True)
    flags = {k: v for k, v in cases["flagsets"][flagset].items() if k not in ("nc", "classes")}
    # the calibrated model's output: the seeded one's scores never pass these thresholds
    pred = fwd["calib_eval_out"].transpose(1, 2).contiguous().numpy()  # ours is (B, N, 4 + nc)
    out = non_max_suppression_numpy(pred, has_objectness=False, **flags)
    case = cases["cases"][f"calib_{flagset}"]
    assert [len(d) for d in out] == [len(d) for d in case["out"]] and sum(len(d) for d in out) > 0
    for ours, theirs in zip(out, case["out"]):
        torch.testing.assert_close(_sorted_rows(torch.from_numpy(ours)), _sorted_rows(theirs), atol=1e-5, rtol=0)


def test_greedy_nms_by_hand() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9.0]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    # box 3 (0.95) suppresses 0 (IoU 0.9) and 1 (IoU 0.6); box 2 is apart
    assert greedy_nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert greedy_nms(boxes, scores, 0.95).tolist() == [3, 0, 1, 2]
    assert greedy_nms(boxes[:0], scores[:0], 0.5).tolist() == []


def test_greedy_nms_equals_torchvision_kernel() -> None:
    from utils.nms_kernel import nms

    rng = np.random.default_rng(0)
    for n, iou in ((1, 0.5), (300, 0.3), (2000, 0.45), (2000, 0.7)):
        xy = rng.random((n, 2), np.float32) * 300
        boxes = np.concatenate((xy, xy + rng.random((n, 2), np.float32) * 80 + 1), 1)
        scores = rng.random(n, np.float32)
        want = nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy()
        np.testing.assert_array_equal(greedy_nms(boxes, scores, iou), want)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="conf_thres"):
        non_max_suppression_numpy(np.zeros((1, 4, 85), np.float32), conf_thres=1.5)
    with pytest.raises(ValueError, match=r"\(batch, n, 5 \+ nc\)"):
        non_max_suppression_numpy(np.zeros((4, 85), np.float32))
    with pytest.raises(ValueError, match=r"\(batch, n, 4 \+ nc\)"):
        non_max_suppression_numpy(np.zeros((1, 4, 4), np.float32), has_objectness=False)
