"""The anchor-free family trains through the head contract: make_loss picks its loss, the loss falls on real images."""
from __future__ import annotations

import pytest
import torch

from models.yolo import Model
from tests.demo_subset import demo_subset_yaml
from utils.data_yaml import load_data_yaml
from utils.dataloaders import create_dataloader
from utils.loss_factory import make_loss
from utils.loss_v8 import V8DetectionLoss


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo11n.yaml"])
def test_loss_falls_on_demo_images(cfg, tmp_path, one_thread):
    data = load_data_yaml(demo_subset_yaml(tmp_path, 4, 1))
    _, dataset = create_dataloader(data["train"], 96, 4, 32, workers=0, nc=len(data["names"]))
    imgs, targets = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=dataset.collate_fn)))[:2]
    imgs = imgs.float() / 255
    torch.manual_seed(0)
    model = Model(cfg, nc=len(data["names"])).train()
    loss_fn = make_loss(model.detect, {"box": 0.05, "obj": 1.0, "cls": 0.5, "anchor_t": 4.0}, 4, 96)  # a YOLOv5 hyp
    assert isinstance(loss_fn, V8DetectionLoss) and loss_fn.hyp["box"] == 7.5  # this family's gains are used
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    losses = []
    for _ in range(8):
        loss, items = loss_fn(model(imgs), targets)
        assert torch.isfinite(items).all()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


def test_yolov5_heads_keep_their_loss():
    from utils.loss import ComputeLoss

    model = Model("yolov5n.yaml")
    assert isinstance(make_loss(model.detect, {"box": 0.05, "obj": 1.0, "cls": 0.5, "anchor_t": 4.0}, 80, 640),
                      ComputeLoss)
