"""non_max_suppression against the official YOLOv5 v7.0 outputs (nms_cases.pt, yolov5n_forward.pt) and hand cases."""
from __future__ import annotations

import logging

import pytest
import torch

from tests.shared_data import shared_path
from utils.nms import non_max_suppression

NO_LIMIT = {"time_limit": float("inf")}  # a loaded CPU must not cut a comparison short (the limit has its own test)


@pytest.fixture(scope="module")
def cases() -> dict:
    return torch.load(shared_path("reference", "yolov5", "nms_cases.pt"), weights_only=True)


@pytest.fixture(scope="module")
def pred(cases: dict) -> torch.Tensor:
    """The (4, 25200, 85) prediction rebuilt from its sparse copy (zeros where obj <= 1e-3)."""
    full = torch.zeros(cases["pred_shape"])
    for b, (rows, index) in enumerate(zip(cases["pred_rows"], cases["pred_row_index"])):
        full[b, index] = rows
    return full


CASE_NAMES = ["val", "val_single_label", "detect", "detect_agnostic", "detect_classes0", "detect_multilabel"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_reproduces_official_cases(cases: dict, pred: torch.Tensor, name: str) -> None:
    out = non_max_suppression(pred, **cases["nms_kwargs"][name], **NO_LIMIT)
    expected = cases["nms"][name]
    assert len(out) == len(expected) == 4
    for got, want in zip(out, expected):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_forward_640_detect_defaults() -> None:
    ref = torch.load(shared_path("reference", "yolov5", "yolov5n_forward.pt"), weights_only=True)
    out = non_max_suppression(ref["eval_out_640"], 0.25, 0.45, max_det=1000)
    assert len(out) == 1
    torch.testing.assert_close(out[0], ref["nms_640"], atol=1e-6, rtol=0)
    # an eval-mode model returns (out, raw); the tuple is accepted as YOLOv5 does
    torch.testing.assert_close(non_max_suppression((ref["eval_out_640"], []), 0.25, 0.45, max_det=1000)[0],
                               ref["nms_640"], atol=1e-6, rtol=0)


def test_class_filter_equals_filtering_the_result(cases: dict, pred: torch.Tensor) -> None:
    kwargs = cases["nms_kwargs"]["val"] | {"max_det": 30000} | NO_LIMIT
    full = non_max_suppression(pred, **kwargs)
    kept = non_max_suppression(pred, **(kwargs | {"classes": [45, 50, 2]}))
    for a, b in zip(full, kept):
        want = a[(a[:, 5:6] == torch.tensor([45.0, 50.0, 2.0])).any(1)]
        assert torch.equal(b, want)
    assert sum(len(b) for b in kept) > 0


def test_max_det_truncates_by_confidence(cases: dict, pred: torch.Tensor) -> None:
    kwargs = cases["nms_kwargs"]["val"] | NO_LIMIT
    full = non_max_suppression(pred, **kwargs)
    short = non_max_suppression(pred, **(kwargs | {"max_det": 7}))
    for a, b in zip(full, short):
        assert torch.equal(b, a[:7])
        assert bool((b[1:, 4] <= b[:-1, 4]).all())


def _rows(boxes_xywh: list[list[float]], obj: list[float], cls: list[list[float]]) -> torch.Tensor:
    return torch.cat((torch.tensor(boxes_xywh), torch.tensor(obj)[:, None], torch.tensor(cls)), 1)[None]


def test_hand_case_per_class_agnostic_and_multilabel() -> None:
    # two heavily overlapping boxes of different best classes, one far away
    pred = _rows([[50, 50, 40, 40], [52, 50, 40, 40], [200, 200, 20, 20]],
                 [0.9, 0.8, 0.5], [[0.9, 0.1], [0.2, 0.9], [0.6, 0.55]])
    per_class = non_max_suppression(pred, 0.25, 0.45)[0]
    assert per_class[:, 5].tolist() == [0.0, 1.0, 0.0]  # both overlapping boxes survive: different classes
    torch.testing.assert_close(per_class[:, 4], torch.tensor([0.81, 0.72, 0.3]))
    torch.testing.assert_close(per_class[0, :4], torch.tensor([30.0, 30.0, 70.0, 70.0]))
    agnostic = non_max_suppression(pred, 0.25, 0.45, agnostic=True)[0]
    assert agnostic[:, 4].tolist() == pytest.approx([0.81, 0.3])  # the class-1 box is suppressed
    multi = non_max_suppression(pred, 0.25, 0.45, multi_label=True)[0]
    # far box: class 0 (0.30) and class 1 (0.275) both pass; box 0 class 1 (0.09) and box 1 class 0 (0.16) do not
    assert sorted(multi[:, 4].tolist()) == pytest.approx(sorted([0.81, 0.72, 0.3, 0.275]))


def test_multilabel_forced_off_for_one_class() -> None:
    pred = _rows([[50, 50, 40, 40]], [0.9], [[0.9]])
    out = non_max_suppression(pred, 0.25, 0.45, multi_label=True)[0]
    assert out.shape == (1, 6)
    assert out[0, 5] == 0


def test_apriori_labels_are_added_with_confidence_one() -> None:
    pred = torch.zeros(2, 10, 7)
    labels = [torch.tensor([[1.0, 100, 100, 20, 10]]), torch.zeros((0, 5))]
    out = non_max_suppression(pred, 0.25, 0.45, labels=labels)
    torch.testing.assert_close(out[0], torch.tensor([[90.0, 95, 110, 105, 1, 1]]))
    assert out[1].shape == (0, 6)


def test_time_limit_warns_and_stops(cases: dict, pred: torch.Tensor, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="utils.nms"):
        out = non_max_suppression(pred, **cases["nms_kwargs"]["val"], time_limit=0.0)
    assert "time limit" in caplog.text
    assert len(out[0]) == 300 and all(len(o) == 0 for o in out[1:])


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="prediction"):
        non_max_suppression(torch.zeros(10, 85))
    with pytest.raises(ValueError, match="conf_thres"):
        non_max_suppression(torch.zeros(1, 10, 85), conf_thres=1.5)
    with pytest.raises(ValueError, match="iou_thres"):
        non_max_suppression(torch.zeros(1, 10, 85), iou_thres=-0.1)
