"""The anchor-free family trains through the head contract: make_loss picks its loss, the loss falls on real images."""
from __future__ import annotations

import pytest
import torch

from models.yolo import Model
from tests.demo_subset import demo_subset_yaml
from utils.data.data_yaml import load_data_yaml
from utils.data.dataloaders import create_dataloader
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


@pytest.mark.slow
def test_training_run_names_the_v8_loss_items(tmp_path, one_thread, caplog):
    """results.csv, the epoch header and the loss-curve tool name the anchor-free loss's items box/cls/dfl
    (YOLOv5 runs keep box/obj/cls)."""
    import logging

    from train import train
    from utils.analysis.loss_curves import read_results, summary
    from utils.train.loggers import read_results_csv
    from utils.train.options import TrainOptions

    data = demo_subset_yaml(tmp_path, 8, 4)
    opts = TrainOptions(data=str(data), cfg="yolov8n.yaml", imgsz=64, epochs=1, batch_size=4, accumulate=1,
                        noautoanchor=True, noplots=True, workers=0, project=str(tmp_path / "runs"), name="v8")
    with caplog.at_level(logging.INFO, logger="yolo"):
        res = train(opts)
    cols, rows = read_results_csv(res.save_dir / "results.csv")
    assert cols[1:4] == ["train/box_loss", "train/cls_loss", "train/dfl_loss"]
    assert cols[8:11] == ["val/box_loss", "val/cls_loss", "val/dfl_loss"] and len(rows) == 1
    assert all(v > 0 for v in rows[0][1:4])  # every item is a real loss
    assert "box_loss   cls_loss   dfl_loss" in caplog.text
    assert "last train box/cls/dfl" in summary([read_results(res.save_dir / "results.csv")])
