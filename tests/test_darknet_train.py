"""A converted yolov3-tiny trains with the YOLOv5 loss through DarknetDetect's own box parametrisation."""
from __future__ import annotations

import torch

from models.darknet_cfg import model_from_cfg
from tests.shared_data import shared_path
from utils.darknet_weights import load_weights
from utils.loss import ComputeLoss

HYP = {"box": 0.05, "cls": 0.5, "cls_pw": 1.0, "obj": 1.0, "obj_pw": 1.0, "anchor_t": 4.0, "fl_gamma": 0.0}


def test_darknet_box_from_raw_matches_its_decode() -> None:
    model = model_from_cfg(shared_path("darknet", "yolov4-tiny.cfg"))
    head = model.detect
    p = torch.randn(1, head.na, 2, 3, head.no)
    for level in range(head.nl):
        dec = head.decode(level, p)  # pixels
        box = head.box_from_raw(p[..., :2].reshape(-1, 2), p[..., 2:4].reshape(-1, 2),
                                head.anchors[level].repeat_interleave(6, 0), level=level)
        cell = torch.tensor([[x, y] for y in range(2) for x in range(3)], dtype=torch.float32).repeat(head.na, 1)
        s = head.stride[level]
        torch.testing.assert_close((box[:, :2] + cell) * s, dec[..., :2].reshape(-1, 2))
        torch.testing.assert_close(box[:, 2:] * s, dec[..., 2:4].reshape(-1, 2))
    assert head.scale_x_y == [1.05, 1.05]


def test_converted_yolov3_tiny_loss_decreases() -> None:
    torch.manual_seed(0)
    model = model_from_cfg(shared_path("darknet", "yolov3-tiny.cfg"))
    load_weights(model, shared_path("darknet", "yolov3-tiny.weights"))
    model.train()
    loss_fn = ComputeLoss(model.detect, HYP)
    imgs = torch.rand(2, 3, 128, 128)
    targets = torch.tensor([[0, 16, 0.4, 0.5, 0.3, 0.5], [1, 2, 0.6, 0.3, 0.2, 0.1]])
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    losses = []
    for _ in range(4):
        loss, items = loss_fn(model(imgs), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        assert torch.isfinite(items).all()
    assert losses[-1] < 0.8 * losses[0], losses
