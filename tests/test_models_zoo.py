"""The YAML zoo against the official YOLOv5 v7.0 figures: parameters, GFLOPs, strides, state_dict layout."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from models import model_from_checkpoint
from models.checkpoint import make_checkpoint
from models.yolo import MODELS_DIR, Model
from tests.shared_data import shared_path
from utils.torch_utils import count_params, gflops

# Official figures printed by YOLOv5 (v7.0 for the current zoo, v5.0 for yolov5s-v5, v3.0 for yolov5s-v3:
# "7.46816e+06 parameters"), written here so a machine without ../shared still checks them.
# name: (parameters, GFLOPs at 640 as printed, fused parameters or None)
OFFICIAL = {
    "yolov5n": (1_872_157, "4.6", 1_867_405),
    "yolov5s": (7_235_389, "16.6", 7_225_885),
    "yolov5m": (21_190_557, "49.2", 21_172_173),
    "yolov5l": (46_563_709, "109.6", 46_533_693),
    "yolov5x": (86_749_405, "206.3", 86_705_005),
    "yolov5s6": (12_626_620, "17.0", 12_612_508),
    "yolov5-p2": (47_493_372, "126.3", 47_461_436),
    "yolov3": (61_949_149, "156.6", 61_922_845),
    "yolov3-spp": (62_998_749, "157.5", 62_971_933),
    "yolov3-tiny": (8_852_366, "13.3", 8_849_182),
    "yolov5s-v5": (7_276_605, None, None),
}

ZOO = sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))
# the largest forward+backward runs (the slowest on the shared 2-core CPU): left out of the `-m "not slow"` loop
HEAVY_ZOO = {"yolov5l", "yolov5x", "yolov5s6", "yolov5s-v3", "yolov5s-v5", "yolov5s-timm-resnet18", "yolov5m",
             "yolov3", "yolov3-spp", "yolov5-p2", "yolov5s-convnext", "yolov5s-tv-resnet18"}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_parameter_counts_match_official(name):
    params, gf, fused = OFFICIAL[name]
    model = Model(f"{name}.yaml").eval()
    assert count_params(model)[0] == params
    if gf is not None:
        assert f"{gflops(model):.1f}" == gf
    if fused is not None:
        assert count_params(copy.deepcopy(model).fuse())[0] == fused


def test_yolov5s_v5_layer_count_and_v3_parameters():
    # YOLOv5 v5.0 printed "283 layers, 7276605 parameters" (one activation module per Conv, as here);
    # the summary counts layers the v7.0 way (one shared activation), as models.json's n_layers.
    assert len(list(Model("yolov5s-v5.yaml").modules())) == 283
    # YOLOv5 v3.0 printed "7.46816e+06 parameters" for its yolov5s (Focus, BottleneckCSP, SPP).
    assert f"{count_params(Model('yolov5s-v3.yaml'))[0]:g}" == "7.46816e+06"


def _reference_models():
    return json.loads(shared_path("reference", "yolov5", "models.json").read_text())["models"]


@pytest.mark.parametrize("name", ["yolov5n", "yolov5s", "yolov5m", "yolov5l", "yolov5x", "yolov5s6", "yolov3",
                                  "yolov3-tiny", "yolov3-spp", "yolov5-p2", "yolov5s_nc3"])
def test_against_models_json(name):
    ref = _reference_models()[name]
    cfg = ref["cfg"].rsplit("/", 1)[-1]
    model = Model(cfg, nc=ref["nc"]).eval()
    assert count_params(model) == (ref["n_params"], ref["n_gradients"])
    assert model.layer_count() == ref["n_layers"]
    assert round(gflops(model), 1) == pytest.approx(ref["gflops_640"], abs=0.05)
    assert model.stride.tolist() == ref["stride"]
    assert model.save == ref["save_list"]
    assert model.detect.anchors.tolist() == ref["anchors_grid_units"]
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == [[k, s] for k, s, _ in ref["state_dict"]]
    fused = copy.deepcopy(model).fuse()
    assert count_params(fused)[0] == ref["fused_n_params"]
    assert fused.layer_count() == ref["fused_n_layers"]
    assert round(gflops(fused), 1) == pytest.approx(ref["fused_gflops_640"], abs=0.05)
    assert [[k, list(v.shape)] for k, v in fused.state_dict().items()] == [list(x) for x in ref["fused_state_dict"]]
    assert [layer.np for layer in model.model] == [row[3] for row in ref["layers"]]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY_ZOO else n for n in ZOO])
def test_every_yaml_builds_runs_forward_and_backward(name):
    torch.manual_seed(0)
    model = Model(f"{name}.yaml", nc=3)
    x = torch.rand(2, 3, 64, 64)
    raw = model.train()(x)
    head = model.detect
    assert len(raw) == head.nl
    na = head.na if head.has_anchors else 1  # anchor-free: one prediction per cell, maps (B, 4*reg_max + nc, H, W)
    for p, s in zip(raw, model.stride.tolist()):
        shape = (2, na, int(64 / s), int(64 / s), 8) if head.has_anchors else (2, head.no, int(64 / s), int(64 / s))
        assert p.shape == shape
    sum(p.float().pow(2).mean() for p in raw).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]  # (the DFL decode conv is fixed)
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        out, _ = model(x)
    n_cells = sum(getattr(head, "na", na) * int(64 / s) ** 2 for s in model.stride.tolist())  # RetinaHead: 9
    assert out.shape == (2, n_cells, 4 + head.has_objectness + 3)
    assert ((out[..., 4:] >= 0) & (out[..., 4:] <= 1)).all()
    reloaded = model_from_checkpoint(make_checkpoint(model), name).eval()  # YAML + state_dict -> same model
    with torch.no_grad():
        assert torch.equal(reloaded(x)[0], out)
