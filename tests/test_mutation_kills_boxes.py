"""utils/boxes.py: the defaults YOLOv5 callers rely on (640 x 640, no padding, eps) and in-place clipping.

Written against mutants that survived tests/test_boxes.py, which always passes every argument
(docs/mutation_testing.md).
"""
from __future__ import annotations

import numpy as np
import torch

from utils.boxes import bbox_iou, box_iou, clip_boxes, scale_boxes, xyn2xy, xywhn2xyxy, xyxy2xywhn


def test_normalised_conversions_default_to_640_square_without_padding() -> None:
    xywhn = np.array([[0.5, 0.25, 0.25, 0.125]])
    np.testing.assert_allclose(xywhn2xyxy(xywhn), [[240.0, 120.0, 400.0, 200.0]])
    np.testing.assert_allclose(xyxy2xywhn(np.array([[240.0, 120.0, 400.0, 200.0]])), xywhn)
    np.testing.assert_allclose(xyn2xy(np.array([[0.5, 0.25]])), [[320.0, 160.0]])


def test_xyxy2xywhn_clip_keeps_eps_inside_the_border() -> None:
    out = xyxy2xywhn(np.array([[-5.0, 10.0, 120.0, 200.0]]), w=100, h=50, clip=True, eps=1.0)
    # clipped to x in [0, 99], y in [0, 49]: (0, 10, 99, 49)
    np.testing.assert_allclose(out, [[49.5 / 100, 29.5 / 50, 99 / 100, 39 / 50]])
    unclipped = xyxy2xywhn(np.array([[-5.0, 10.0, 120.0, 200.0]]), w=100, h=50)
    np.testing.assert_allclose(unclipped, [[0.575, 2.1, 1.25, 3.8]])


def test_clip_boxes_is_in_place_for_both_backends_with_shape_h_w() -> None:
    rows = [[-3.0, -4.0, 90.0, 70.0], [85.0, 65.0, -1.0, -2.0]]  # every coordinate out on each side
    for boxes in (torch.tensor(rows), np.array(rows)):
        out = clip_boxes(boxes, (60, 80))  # h = 60, w = 80
        assert out is boxes
        assert np.asarray(boxes).tolist() == [[0.0, 0.0, 80.0, 60.0], [80.0, 60.0, 0.0, 0.0]]


def test_scale_boxes_given_and_recomputed_padding() -> None:
    # 640x640 letterbox of a 480x320 (h x w) image: gain 4/3, x padding (640 - 320 * 4/3) / 2 = 106.67
    gain, padw = 640 / 480, (640 - 320 * 640 / 480) / 2
    boxes = torch.tensor([[padw + 40.0, 80.0, padw + 200.0, 400.0]])
    want = [[30.0, 60.0, 150.0, 300.0]]
    torch.testing.assert_close(scale_boxes((640, 640), boxes.clone(), (480, 320)), torch.tensor(want))
    torch.testing.assert_close(scale_boxes((640, 640), boxes.clone(), (480, 320), ((gain, gain), (padw, 0.0))),
                               torch.tensor(want))
    other = scale_boxes((640, 640), torch.tensor([[10.0, 20.0, 30.0, 40.0]]), (480, 320), ((2.0, 2.0), (4.0, 6.0)))
    torch.testing.assert_close(other, torch.tensor([[3.0, 7.0, 13.0, 17.0]]))


def test_iou_eps_defaults_are_small() -> None:
    tiny = torch.tensor([[0.0, 0.0, 1e-3, 1e-3]])
    assert float(box_iou(tiny, tiny)) > 0.9
    xywh = torch.tensor([[0.5, 0.5, 1e-3, 1e-3]])
    assert float(bbox_iou(xywh, xywh)) > 0.9
    assert float(bbox_iou(tiny, tiny, xywh=False, CIoU=True)) > 0.9
