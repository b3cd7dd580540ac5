"""Converted Darknet models train: the YOLOv5 loss through DarknetDetect's own box parametrisation, and
fine-tuning on a dataset with another class count (the [yolo] convs resized, everything else transferred)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from models import load_checkpoint_dict, load_model
from models.build import model_from_cfg
from tests.demo_subset import demo_subset_yaml
from tests.sgd_steps import HYP, sgd_steps
from tests.shared_data import shared_path
from tools.darknet_convert import to_checkpoint, to_weights
from train import train
from utils.darknet_weights import load_weights
from utils.loss import ComputeLoss
from utils.train.options import TrainOptions
from utils.train.setup import build_model

TWO_BOXES = torch.tensor([[0, 16, 0.4, 0.5, 0.3, 0.5], [1, 2, 0.6, 0.3, 0.2, 0.1]])  # COCO classes dog, car


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
    losses = sgd_steps(model, steps=4, imgsz=128, lr=1e-3, targets=TWO_BOXES)
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_converted_yolov4_tiny_fine_tunes_on_four_classes(tmp_path: Path) -> None:
    ckpt = to_checkpoint(shared_path("darknet", "yolov4-tiny.cfg"), shared_path("darknet", "yolov4-tiny.weights"),
                         tmp_path / "y4t.pt", shared_path("darknet", "coco.names"))
    data = demo_subset_yaml(tmp_path, 16, 8)
    opts = TrainOptions(data=str(data), weights=str(ckpt), imgsz=64, epochs=1, batch_size=8, noautoanchor=True,
                        noplots=True, workers=0, project=str(tmp_path / "runs"), name="ft")
    model = build_model(opts, 4, {}, torch.device("cpu"))
    head = model.detect
    convs = head.output_convs(model.model)
    assert head.nc == 4 and [c.out_channels for c in convs] == [27, 27]
    src = load_checkpoint_dict(ckpt)["state_dict"]
    new = {k for k, v in model.state_dict().items() if k not in src or src[k].shape != v.shape}
    assert new == {f"model.{i}.conv.{p}" for i in (29, 36) for p in ("weight", "bias")}  # only the [yolo] convs
    assert all(torch.equal(v, src[k]) for k, v in model.state_dict().items() if k not in new)
    for conv, s in zip(convs, head.stride.tolist()):  # the fresh convs start from YOLOv5's bias prior
        obj = conv.bias.detach().view(3, 9)[:, 4]
        assert (obj - math.log(8 / (640 / s) ** 2)).abs().max() < 0.1
    res = train(opts)
    trained = load_model(res.last)
    assert trained.names == ["circle", "square", "triangle", "cross"]
    assert [c.out_channels for c in trained.detect.output_convs(trained.model)] == [27, 27]
    with torch.no_grad():
        out = trained(x := torch.rand(1, 3, 64, 64))[0]
    assert out.shape[-1] == 9 and torch.isfinite(out).all()
    # back to Darknet: the written cfg has 4 classes and 27-filter [yolo] convs, and runs the same
    weights = to_weights(res.last, tmp_path / "ft.weights", cfg_out=tmp_path / "ft.cfg")
    text = (tmp_path / "ft.cfg").read_text()
    assert text.count("classes=4") == 2 and text.count("filters=27") == 2
    darknet = load_model(weights, cfg=tmp_path / "ft.cfg")
    with torch.no_grad():
        torch.testing.assert_close(darknet(x)[0], out)


def _new_coords_tiny(tmp_path: Path) -> torch.nn.Module:
    """yolov4-tiny in the Scaled-YOLOv4 style: logistic [yolo] convs and new_coords=1."""
    text = shared_path("darknet", "yolov4-tiny.cfg").read_text()
    cfg = tmp_path / "nc1.cfg"
    cfg.write_text(text.replace("activation=linear", "activation=logistic").replace("[yolo]", "[yolo]\nnew_coords=1"))
    return model_from_cfg(cfg)


def test_new_coords_objectness_loss_is_bce_of_the_probabilities(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _new_coords_tiny(tmp_path).train()
    assert model.detect.new_coords == [1, 1]
    preds = model(torch.rand(2, 3, 64, 64))
    loss_fn = ComputeLoss(model.detect, HYP)
    _, items = loss_fn(preds, torch.zeros(0, 6))  # no targets: only objectness, against 0 everywhere
    expected = sum(w * torch.nn.functional.binary_cross_entropy(p[..., 4], torch.zeros_like(p[..., 4]))
                   for w, p in zip(loss_fn.balance, preds))
    torch.testing.assert_close(items[1], expected.detach() * HYP["obj"])


def test_new_coords_model_loss_decreases(tmp_path: Path) -> None:
    torch.manual_seed(0)
    losses = sgd_steps(_new_coords_tiny(tmp_path), steps=6, imgsz=128, lr=1e-2, targets=TWO_BOXES)
    assert losses[-1] < 0.8 * losses[0], losses
