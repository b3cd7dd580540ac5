"""The mmdetection-family YAMLs (models/*-csp.yaml): they build, run both modes through the head contract, refuse
bad head_cfg entries naming the file and key, train (a few SGD steps lower the loss), and go through
train.py / val.py / detect.py / export.py (slow)."""
from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
import yaml

from models.fpn import FPN
from models.head_protocol import DetectionHead
from models.parse import ModelConfigError
from models.yolo import Model, resolve_cfg
from tests.demo_subset import demo_subset_yaml
from utils.loss_factory import make_loss
from utils.nms import head_nms_kwargs

YAMLS = {"retinanet-csp.yaml": "retina", "fcos-csp.yaml": "fcos", "atss-csp.yaml": "atss", "gfl-csp.yaml": "gfl",
         "yolox-csp.yaml": "yolox"}
TARGETS = torch.tensor([[0, 3, 0.5, 0.5, 0.4, 0.3], [1, 2, 0.3, 0.6, 0.2, 0.5], [1, 1, 0.7, 0.3, 0.3, 0.3]])


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {cfg: Model(cfg, nc=4) for cfg in YAMLS}


@pytest.mark.parametrize("cfg", YAMLS)
def test_yaml_builds_a_contract_head(models, cfg):
    model = models[cfg]
    head = model.detect
    assert isinstance(head, DetectionHead) and head.loss_name == YAMLS[cfg] and not head.has_anchors
    assert head.stride.tolist() == ([8.0, 16.0, 32.0] if "yolox" in cfg else [8.0, 16.0, 32.0, 64.0])
    x = torch.rand(2, 3, 128, 128)
    model.train()
    raw = model(x)
    assert isinstance(raw, list) and len(raw) == head.nl and raw[0].shape[1] == head.no
    model.eval()
    with torch.no_grad():
        decoded, raw_eval = model(x)
    priors = sum(r.shape[2] * r.shape[3] for r in raw_eval) * getattr(head, "na", 1)
    assert decoded.shape == (2, priors, 4 + head.has_objectness + 4)
    assert (decoded[..., 4:] >= 0).all() and (decoded[..., 4:] <= 1).all()
    # mmdet's bias init: every class score starts near the prior 0.01 (times centerness 0.5 / objectness 0.01)
    cls = decoded[..., 4 + head.has_objectness:].max()
    assert cls < 0.02
    kw = head_nms_kwargs(head.test_cfg, {"conf_thres": 0.001, "iou_thres": 0.6, "max_det": 300}, val=True)
    assert kw["iou_thres"] == head.cfg["test_cfg"]["nms"]["iou_threshold"]
    assert kw["conf_thres"] == head.cfg["test_cfg"]["score_thr"]


@pytest.mark.parametrize("cfg", YAMLS)
def test_a_few_sgd_steps_lower_the_loss(models, cfg):
    model = copy.deepcopy(models[cfg]).train()
    loss_fn = make_loss(model.detect, {}, 4, 128)
    assert len(loss_fn.item_names) == 3
    opt = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
    imgs = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    losses, box = [], []
    term = "dfl" if "gfl" in cfg else "box"  # GFL's integral regression learns through its DFL term first (measured)
    for _ in range(6):
        loss, items = loss_fn(model(imgs), TARGETS)
        assert torch.isfinite(loss).all() and items.shape == (3,)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        box.append(float(items[loss_fn.item_names.index(term)]))
    # the regression term falls; the total need not at once (GFL's quality-focal target is the predicted IoU, which
    # rises as the boxes improve). Batch-statistics BN on 2 random images: noisy steps.
    assert sum(box[-2:]) / 2 < box[0], (term, box, losses)


def _edited(cfg: str, **head_cfg) -> dict:
    d = yaml.safe_load(resolve_cfg(cfg).read_text())
    d["head_cfg"].update(head_cfg)
    d["yaml_file"] = str(resolve_cfg(cfg))
    return d


@pytest.mark.parametrize("edit,message", [
    ({"loss_cls": {"type": "FocalLos"}}, "head_cfg.loss_cls.type: unknown loss 'FocalLos'; did you mean FocalLoss"),
    ({"loss_cls": {"gamma": "two"}}, "head_cfg.loss_cls.gamma: expected float"),
    ({"train_cfg": {"assigner": {"type": "ATSSAssigner", "topk": 0}}}, "head_cfg.train_cfg.assigner"),
    ({"train_cfg": {"assigner": {"type": "ATSSAssigner", "topk": 9}, "samplr": {}}}, "head_cfg.train_cfg.samplr"),
    ({"stacked_convz": 2}, "head_cfg.stacked_convz: unknown ATSSHead config key"),
    ({"test_cfg": {"nms": {"type": "nms", "iou_threshold": 2}}}, "head_cfg.test_cfg.nms.iou_threshold"),
    ({"anchor_generator": {"strides": [8, 16, 32]}}, "4 input levels but head_cfg names 3 strides"),
])
def test_bad_head_cfg_names_file_and_key(edit, message):
    with pytest.raises(ModelConfigError) as e:
        Model(_edited("atss-csp.yaml", **edit), nc=4)
    assert "atss-csp.yaml: layer 11" in str(e.value) and message in str(e.value)


def test_head_cfg_part_swapped_by_type():
    """A part given with another type replaces the default (GIoU for FCOS's IoU loss, the 'tricks' variant)."""
    model = Model(_edited("fcos-csp.yaml", loss_bbox={"type": "GIoULoss", "loss_weight": 1.0},
                          center_sampling=True, norm_on_bbox=True, centerness_on_reg=True), nc=4)
    cfg = model.detect.cfg
    assert cfg["loss_bbox"] == {"type": "GIoULoss", "loss_weight": 1.0} and cfg["center_sampling"]
    assert model.detect.norm_on_bbox and model.detect.centerness_on_reg


@pytest.mark.parametrize("extra", [False, "on_input", "on_lateral", "on_output"])
def test_fpn_extra_levels(extra):
    fpn = FPN([16, 32, 64], 24, 5, extra, relu_before_extra_convs=True)
    feats = [torch.rand(1, c, s, s) for c, s in ((16, 16), (32, 8), (64, 4))]
    outs = fpn(feats)
    assert [tuple(o.shape) for o in outs] == [(1, 24, s, s) for s in (16, 8, 4, 2, 1)]
    assert len(fpn.extra_convs) == (0 if extra is False else 2)
    if extra == "on_input":
        assert fpn.extra_convs[0].in_channels == 64
    outs[0].sum().backward()  # the top-down path reaches the coarsest lateral
    assert fpn.lateral_convs[2].weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_cli_train_val_detect_export(tmp_path):
    """One family (ATSS) end to end on 64 / 16 demo images: train.py 1 epoch, then val.py, detect.py and export.py."""
    pytest.importorskip("onnxruntime")
    run = [sys.executable]
    common = ["--project", str(tmp_path), "--exist-ok"]
    data = str(demo_subset_yaml(tmp_path, 64, 16))
    subprocess.run([*run, "train.py", "--cfg", "atss-csp.yaml", "--hyp", "hyp.atss.yaml", "--data", data,
                    "--weights", "", "--imgsz", "128", "--batch-size", "16", "--epochs", "1", "--workers", "0",
                    "--name", "t", *common], check=True)
    w = tmp_path / "t" / "weights" / "last.pt"
    subprocess.run([*run, "val.py", "--weights", str(w), "--data", data, "--imgsz", "128",
                    "--name", "v", *common], check=True)
    subprocess.run([*run, "export.py", "--weights", str(w), "--include", "torchscript", "onnx", "--imgsz", "128"],
                   check=True)
    for f in (w, w.with_suffix(".onnx"), w.with_suffix(".torchscript")):
        subprocess.run([*run, "detect.py", "--weights", str(f), "--source", str(tmp_path / "val.txt"),
                        "--imgsz", "128", "--name", f"d{f.suffix}", *common], check=True)
    assert (tmp_path / "t" / "results.csv").read_text().split("\n")[0].count("ctr_loss") == 2
