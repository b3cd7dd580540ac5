"""Darknet cfg reading, bad cfgs / bad .weights, yolov3/yolov4 layouts, conversion round trips."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from models import load_model
from models.build import model_from_cfg
from models.darknet_cfg import DarknetCfgError, cfg_to_yaml, write_yaml
from models.darknet_cfg_writer import write_cfg
from models.darknet_layers import DarknetMaxPool
from models.yolo import Model
from tests.shared_data import shared_path
from tools.darknet_convert import to_checkpoint, to_weights
from utils.darknet_weights import (DarknetWeightsError, load_weights, save_weights, weights_bytes,
                                  weights_float_count)

ZOO = Path(__file__).resolve().parents[1] / "models" / "darknet"


def _tiny_cfg(tmp_path: Path, text: str | None = None) -> Path:
    """A copy of yolov3-tiny.cfg, optionally with one substitution (old -> new) applied."""
    p = tmp_path / "model.cfg"
    p.write_text(text if text is not None else shared_path("darknet", "yolov3-tiny.cfg").read_text())
    return p


def _edit(tmp_path: Path, old: str, new: str) -> Path:
    text = shared_path("darknet", "yolov3-tiny.cfg").read_text()
    assert old in text
    return _tiny_cfg(tmp_path, text.replace(old, new, 1))


@pytest.mark.parametrize(("old", "new", "match"), [
    ("[upsample]", "[reorg3d]", r"model\.cfg:\d+: unknown section \[reorg3d\]"),
    ("stride=2\n", "stride=2\nwobble=1\n", r"model\.cfg:\d+: unknown key 'wobble' in \[maxpool\]"),
    ("layers = -1, 8", "layers = -1, 40", r"model\.cfg:\d+: \[route\] layers refers to layer 40"),
    ("filters=255", "filters=254", r"model\.cfg:\d+: \[yolo\] the previous layer has 254 filters .* 255"),
    ("activation=leaky", "activation=gelu_x", r"model\.cfg:\d+: \[convolutional\] activation 'gelu_x'"),
])
def test_bad_cfg_errors_name_the_line(tmp_path: Path, old: str, new: str, match: str) -> None:
    with pytest.raises(DarknetCfgError, match=match):
        cfg_to_yaml(_edit(tmp_path, old, new))


def test_stride1_maxpool_pads_right_and_bottom_only() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = DarknetMaxPool(2, 1)(x)
    assert y.shape == x.shape
    # each output is the max of its 2x2 block to the right/below; the last row/column see only themselves
    assert torch.equal(y[0, 0], torch.tensor([[5.0, 6, 7, 7], [9, 10, 11, 11], [13, 14, 15, 15], [13, 14, 15, 15]]))
    assert DarknetMaxPool(5, 1)(x).shape == x.shape and DarknetMaxPool(2, 2)(x).shape == (1, 1, 2, 2)


def test_generated_yaml_builds_the_same_model(tmp_path: Path) -> None:
    cfg = shared_path("darknet", "yolov4-tiny.cfg")
    path = write_yaml(cfg_to_yaml(cfg), tmp_path / "yolov4-tiny.yaml")
    a, b = Model(path), model_from_cfg(cfg)
    assert [type(m).__name__ for m in a.model] == [type(m).__name__ for m in b.model]
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}
    assert a.model[3].groups == 2 and a.model[3].group_id == 1
    bn = a.model[0].bn
    assert bn.eps == 1e-5  # not YOLOv5's 1e-3 set by Model's weight init


def _check_weights(path: Path, size: int, tmp_path: Path, model: torch.nn.Module, match: str) -> None:
    bad = tmp_path / "bad.weights"
    data = path.read_bytes()
    bad.write_bytes(data[:size] if size <= len(data) else data + b"\0" * (size - len(data)))
    with pytest.raises(DarknetWeightsError, match=match):
        load_weights(model, bad)


def test_truncated_and_overlong_weights_are_refused(tmp_path: Path) -> None:
    path = shared_path("darknet", "yolov3-tiny.weights")
    model = model_from_cfg(shared_path("darknet", "yolov3-tiny.cfg"))
    n = path.stat().st_size
    _check_weights(path, n - 4, tmp_path, model, r"bad\.weights: truncated: holds 8,858,733 floats .* 8,858,734")
    _check_weights(path, n + 8, tmp_path, model, r"bad\.weights: over-long: holds 8,858,736 floats .*\(\+2\)")
    _check_weights(path, n + 2, tmp_path, model, r"not a whole number of float32s")
    _check_weights(path, 10, tmp_path, model, r"too short for a \.weights header")


@pytest.mark.slow
@pytest.mark.parametrize(("name", "params", "floats", "size"), [
    ("yolov3", 61_949_149, 62_001_757, 416), ("yolov4", 64_363_101, 64_429_405, 608)])
def test_full_models_build_run_and_round_trip(tmp_path: Path, name: str, params: int, floats: int, size: int) -> None:
    """Darknet's published counts: yolov3.weights is 248,007,048 bytes, yolov4.weights 257,717,640 (= 20 + 4 floats)."""
    d = cfg_to_yaml(ZOO / f"{name}.cfg")
    assert yaml.safe_load((ZOO / f"{name}.yaml").read_text()) == d  # the committed YAML is the cfg's
    model = Model(ZOO / f"{name}.yaml")
    assert model.yaml["darknet"]["width"] == size
    assert sum(p.numel() for p in model.parameters()) == params
    assert weights_float_count(model) == floats
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # make every float of the file distinct from its init
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(), m.running_mean.normal_(), m.running_var.uniform_(0.5, 2)
    path = save_weights(model, tmp_path / f"{name}.weights")
    assert path.stat().st_size == 20 + 4 * floats
    written = path.read_bytes()
    with torch.no_grad():
        for t in model.state_dict().values():
            t.zero_()
    load_weights(model, path)
    assert weights_bytes(model) == written
    model.eval()
    with torch.no_grad():
        out, raw = model(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 3 * (4 + 16 + 64), 85) and torch.isfinite(out).all()
    assert [r.shape[2] for r in raw] == [64 // int(s) for s in model.stride]
    resized = Model(ZOO / f"{name}.yaml", nc=4)  # the [yolo] convs follow nc (`yolo_filters` in the YAML)
    assert [c.out_channels for c in resized.detect.output_convs(resized.model)] == [27, 27, 27]


def _same_model_dict(a: dict, b: dict) -> bool:
    """Two cfg_to_yaml dicts equal but for the cfg file name."""
    return {**a, "darknet": {**a["darknet"], "cfg": ""}} == {**b, "darknet": {**b["darknet"], "cfg": ""}}


@pytest.mark.parametrize("name", ["yolov3", "yolov4"])
def test_written_cfg_reads_back_the_same_model(tmp_path: Path, name: str) -> None:
    model = model_from_cfg(ZOO / f"{name}.cfg")
    written = write_cfg(model, tmp_path / "w.cfg")
    assert _same_model_dict(cfg_to_yaml(written), cfg_to_yaml(ZOO / f"{name}.cfg"))
    head = model.detect
    with torch.no_grad():  # as AutoAnchor would: the cfg then lists the current anchors, masks renumbered
        head.anchors.mul_(1.5)
    d = cfg_to_yaml(write_cfg(model, tmp_path / "a.cfg"))
    assert d["darknet"]["masks"] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    torch.testing.assert_close(torch.tensor(d["anchors"], dtype=torch.float32).view(3, 3, 2),
                               head.anchors * head.stride.view(-1, 1, 1))


def test_only_darknet_layouts_write_a_cfg(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only a model converted from a Darknet cfg"):
        write_cfg(Model("yolov5n.yaml"), tmp_path / "unused.cfg")
    assert not (tmp_path / "unused.cfg").exists()


def test_uneven_masks_are_refused_naming_the_line(tmp_path: Path) -> None:
    text = shared_path("darknet", "yolov3-tiny.cfg").read_text()
    text = text.replace("filters=255", "filters=170", 1).replace("mask = 3,4,5", "mask = 4,5", 1)
    with pytest.raises(DarknetCfgError, match=r"model\.cfg:175: \[yolo\] mask \[0, 1, 2\] uses 3 anchors but the first"):
        cfg_to_yaml(_tiny_cfg(tmp_path, text))


def test_convert_to_checkpoint_and_back_is_byte_identical(tmp_path: Path) -> None:
    cfg, weights = shared_path("darknet", "yolov4-tiny.cfg"), shared_path("darknet", "yolov4-tiny.weights")
    ckpt = to_checkpoint(cfg, weights, tmp_path / "y.pt", shared_path("darknet", "coco.names"), tmp_path / "y.yaml")
    assert Model(tmp_path / "y.yaml").yaml["darknet"]["masks"] == [[3, 4, 5], [1, 2, 3]]
    model = load_model(ckpt)
    assert model.names[16] == "dog" and isinstance(model.model[-1].stride, torch.Tensor)
    assert to_weights(ckpt, tmp_path / "y.weights", tmp_path / "y.cfg").read_bytes() == weights.read_bytes()
    assert _same_model_dict(cfg_to_yaml(tmp_path / "y.cfg"), cfg_to_yaml(cfg))
    direct = load_model(weights, cfg=cfg)
    for (k, a), b in zip(direct.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="needs its cfg"):
        load_model(weights)
