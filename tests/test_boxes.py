"""utils/boxes.py against torchvision.ops, hand-computed values and the official scale_boxes output."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.ops as tvo

from tests.shared_data import shared_path
from utils.boxes import (bbox_iou, box_area, box_iou, clip_boxes, scale_boxes, xyn2xy, xywh2xyxy, xywhn2xyxy,
                         xyxy2xywh, xyxy2xywhn)


def random_xyxy(n: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """n valid xyxy boxes in a 100x100 area, positive width and height."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=dtype) * 80
    wh = torch.rand(n, 2, generator=g, dtype=dtype) * 40 + 1
    return torch.cat((xy, xy + wh), 1)


# ---------------------------------------------------------------- conversions
@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_conversions_match_torchvision(backend: str) -> None:
    xyxy = random_xyxy(50, 0)
    cxcywh = tvo.box_convert(xyxy, "xyxy", "cxcywh")
    as_input = (lambda t: t.numpy()) if backend == "numpy" else (lambda t: t.clone())
    got_xyxy, got_xywh = xywh2xyxy(as_input(cxcywh)), xyxy2xywh(as_input(xyxy))
    assert type(got_xyxy) is type(as_input(xyxy))
    np.testing.assert_allclose(np.asarray(got_xyxy), xyxy.numpy(), atol=1e-12)
    np.testing.assert_allclose(np.asarray(got_xywh), cxcywh.numpy(), atol=1e-12)


def test_conversions_hand_values_and_no_aliasing() -> None:
    xywh = torch.tensor([[10.0, 20.0, 4.0, 6.0]])
    xyxy = xywh2xyxy(xywh)
    assert xyxy.tolist() == [[8.0, 17.0, 12.0, 23.0]]
    assert xywh.tolist() == [[10.0, 20.0, 4.0, 6.0]]  # input untouched
    batched = np.array([[[10.0, 20.0, 4.0, 6.0, 0.7]]])  # extra columns and leading dims are kept
    assert xywh2xyxy(batched).tolist() == [[[8.0, 17.0, 12.0, 23.0, 0.7]]]
    assert xyxy2xywh(xyxy).tolist() == xywh.tolist()


def test_normalised_conversions() -> None:
    xywhn = np.array([[0.5, 0.5, 0.25, 0.5]])
    pixels = xywhn2xyxy(xywhn, w=640, h=480, padw=10, padh=20)
    np.testing.assert_allclose(pixels, [[250.0, 140.0, 410.0, 380.0]])
    np.testing.assert_allclose(xyxy2xywhn(pixels - [10, 20, 10, 20], w=640, h=480), xywhn)
    # clip: a box sticking out of a 100x100 image is cut at the border before normalising
    out = xyxy2xywhn(torch.tensor([[-10.0, 50.0, 30.0, 120.0]]), w=100, h=100, clip=True)
    torch.testing.assert_close(out, torch.tensor([[0.15, 0.75, 0.3, 0.5]]))
    np.testing.assert_allclose(xyn2xy(np.array([[0.5, 0.25]]), w=200, h=100, padw=1, padh=2), [[101.0, 27.0]])


# ---------------------------------------------------------------- IoU family
def test_box_area_and_box_iou_match_torchvision() -> None:
    a, b = random_xyxy(40, 1), random_xyxy(30, 2)
    torch.testing.assert_close(box_area(a), tvo.box_area(a))
    torch.testing.assert_close(box_iou(a, b), tvo.box_iou(a, b), atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("kind,ref", [("GIoU", tvo.generalized_box_iou), ("DIoU", tvo.distance_box_iou),
                                      ("CIoU", tvo.complete_box_iou)])
def test_iou_variants_match_torchvision(kind: str, ref) -> None:
    a, b = random_xyxy(25, 3), random_xyxy(20, 4)
    got = bbox_iou(a[:, None], b[None], xywh=False, **{kind: True}).squeeze(-1)
    torch.testing.assert_close(got, ref(a, b), atol=1e-6, rtol=1e-6)
    got_xywh = bbox_iou(xyxy2xywh(a)[:, None], xyxy2xywh(b)[None], xywh=True, **{kind: True}).squeeze(-1)
    torch.testing.assert_close(got_xywh, got, atol=1e-6, rtol=1e-6)


def test_iou_float32_close_to_float64() -> None:
    a, b = random_xyxy(25, 5), random_xyxy(25, 6)
    got = bbox_iou(a.float(), b.float(), xywh=False, CIoU=True)
    torch.testing.assert_close(got.double(), bbox_iou(a, b, xywh=False, CIoU=True), atol=1e-5, rtol=1e-5)


HAND_CASES = {
    # name: (box1, box2, IoU, GIoU, DIoU, CIoU), xyxy
    "disjoint": ([0, 0, 1, 1], [2, 0, 3, 1], 0.0, -1 / 3, -4 / 10, -4 / 10),
    "nested": ([0, 0, 4, 4], [1, 1, 3, 3], 0.25, 0.25, 0.25, 0.25),
    "identical": ([1, 2, 5, 7], [1, 2, 5, 7], 1.0, 1.0, 1.0, 1.0),
    # half overlap of two unit squares: I=0.5, U=1.5, C=1.5x1 -> GIoU=IoU; rho^2=0.25, c^2=1.5^2+1=3.25
    "shifted": ([0, 0, 1, 1], [0.5, 0, 1.5, 1], 1 / 3, 1 / 3, 1 / 3 - 1 / 13, 1 / 3 - 1 / 13),
}


@pytest.mark.parametrize("name", list(HAND_CASES))
def test_iou_hand_values(name: str) -> None:
    b1, b2, iou, giou, diou, ciou = HAND_CASES[name]
    t1, t2 = torch.tensor([b1], dtype=torch.float64), torch.tensor([b2], dtype=torch.float64)
    for flags, want in (({}, iou), ({"GIoU": True}, giou), ({"DIoU": True}, diou), ({"CIoU": True}, ciou)):
        assert bbox_iou(t1, t2, xywh=False, **flags).item() == pytest.approx(want, abs=1e-6), flags
        assert bbox_iou(xyxy2xywh(t1), xyxy2xywh(t2), **flags).item() == pytest.approx(want, abs=1e-6), flags
    assert box_iou(t1, t2).item() == pytest.approx(iou, abs=1e-6)


def test_ciou_aspect_ratio_term() -> None:
    # same centre, 2x2 inside 4x2: IoU 0.5, rho 0; v = 4/pi^2 (atan(2) - atan(1))^2, alpha = v / (v - IoU + 1)
    a, b = torch.tensor([[0.0, 0, 2, 2]], dtype=torch.float64), torch.tensor([[-1.0, 0, 3, 2]], dtype=torch.float64)
    v = 4 / math.pi ** 2 * (math.atan(2) - math.atan(1)) ** 2
    want = 0.5 - v * v / (v - 0.5 + 1)
    assert bbox_iou(a, b, xywh=False, CIoU=True).item() == pytest.approx(want, abs=1e-6)


def test_ciou_has_gradient() -> None:
    a = torch.tensor([[10.0, 10.0, 4.0, 3.0]], requires_grad=True)
    loss = (1 - bbox_iou(a, torch.tensor([[11.0, 9.0, 5.0, 5.0]]), CIoU=True)).sum()
    loss.backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


# ---------------------------------------------------------------- clip / scale
def test_clip_boxes_in_place_torch_and_numpy() -> None:
    t = torch.tensor([[-5.0, -1.0, 700.0, 500.0]])
    out = clip_boxes(t, (480, 640))
    assert out is t and t.tolist() == [[0.0, 0.0, 640.0, 480.0]]
    a = np.array([[-5.0, -1.0, 700.0, 500.0, 0.9]])
    clip_boxes(a, (480, 640))
    assert a.tolist() == [[0.0, 0.0, 640.0, 480.0, 0.9]]


def test_scale_boxes_reproduces_official() -> None:
    ref = torch.load(shared_path("reference", "yolov5", "yolov5n_forward.pt"), weights_only=True)
    boxes = ref["nms_640"].clone()
    scale_boxes((640, 640), boxes[:, :4], tuple(ref["orig_shape_hwc"]))
    torch.testing.assert_close(boxes, ref["nms_640_scaled"], atol=1e-4, rtol=0)
    assert torch.equal(boxes[:, :4].round(), ref["nms_640_scaled_rounded"][:, :4])
    # the letterbox's own ratio/pad gives the same answer
    lb = ref["letterbox_640"]
    again = scale_boxes((640, 640), ref["nms_640"][:, :4].clone(), (480, 640), ratio_pad=(lb["ratio"], lb["pad_dw_dh"]))
    torch.testing.assert_close(again, ref["nms_640_scaled"][:, :4], atol=1e-4, rtol=0)


def test_scale_boxes_hand_case_numpy() -> None:
    # 320x240 image letterboxed to 640x640: gain 2, pad (0, 80)
    boxes = np.array([[100.0, 100.0, 300.0, 700.0]])
    scale_boxes((640, 640), boxes, (240, 320))
    np.testing.assert_allclose(boxes, [[50.0, 10.0, 150.0, 240.0]])  # y2 = 310 clipped to 240
