"""The anchor-free YOLOv8 / YOLO11 family against the original ultralytics 8.4 code (../shared/reference/ultralytics)."""
from __future__ import annotations

import copy
import json
import logging

import pytest
import torch

from models.parse import ModelConfigError
from models.yolo import Model
from tests.shared_data import shared_path
from utils.torch_utils import gflops

REF = "reference/ultralytics"
NAMES = ["yolov8n", "yolov8s", "yolo11n", "yolo11s", "yolov8n-p2", "yolov8n_nc3"]


@pytest.fixture(scope="module")
def models_json() -> dict:
    return json.loads(shared_path(REF, "models.json").read_text())["models"]


def build(info: dict) -> Model:
    """Our model from the same YAML file name the reference used (scale from the name)."""
    return Model(info["yaml_file"], nc=info["nc"] if info["nc"] != 80 else None)


@pytest.mark.parametrize("name", NAMES)
def test_structure_matches_ultralytics(models_json, name):
    info = models_json[name]
    m = build(info)
    assert m.yaml["scale"] == info["scale"]
    assert sum(p.numel() for p in m.parameters()) == info["n_params"]
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == info["n_gradients"]
    assert m.layer_count() == info["n_layers"]
    assert [sum(p.numel() for p in layer.parameters()) for layer in m.model] == [r[3] for r in info["layers"]]
    assert [layer.f for layer in m.model] == [r[1] for r in info["layers"]]
    assert m.save == info["save"]
    assert m.stride.tolist() == info["stride"]
    assert [[k, list(v.shape)] for k, v in m.state_dict().items()] == [[k, s] for k, s, _ in info["state_dict"]]
    head = m.detect
    det = info["detect"]
    assert (head.nc, head.nl, head.no, head.reg_max, head.legacy) == (det["nc"], det["nl"], det["no"], det["reg_max"],
                                                                       det["legacy_cls_branch"])
    assert [b[-1].bias[0].item() for b in head.cv2] == [det["cv2_last_bias_init"]] * head.nl
    assert [b[-1].bias[0].item() for b in head.cv3] == pytest.approx(det["cv3_last_bias_init_per_level"], rel=1e-6)
    bns = [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    assert {x.eps for x in bns} == set(info["bn_eps"]) and {x.momentum for x in bns} == set(info["bn_momentum"])


@pytest.mark.parametrize("name", NAMES)
def test_gflops_and_fused_match_ultralytics(models_json, name):
    pytest.importorskip("thop")
    info = models_json[name]
    m = build(info)
    assert f"{gflops(m, 640):.1f}" == info["gflops_640_str"]
    assert gflops(m, 640) == pytest.approx(info["gflops_640"], rel=1e-6)
    fused = copy.deepcopy(m).eval().fuse()
    assert sum(p.numel() for p in fused.parameters()) == info["fused_n_params"]
    assert fused.layer_count() == info["fused_n_layers"]
    assert gflops(fused, 640) == pytest.approx(info["fused_gflops_640"], rel=1e-6)
    assert [[k, list(v.shape)] for k, v in fused.state_dict().items()] == [[k, s] for k, s in info["fused_state_dict"]]


def test_summary_line_is_the_originals(models_json, caplog):
    """ultralytics 8's model_info line: 'YOLOv8n summary: 129 layers, 3,157,200 parameters, ...' (its name is the
    file stem with yolo -> YOLO; models.json's line was written with the plain stem) and 'summary (fused)'."""
    pytest.importorskip("thop")
    info = models_json["yolov8n"]
    m = build(info)
    with caplog.at_level(logging.INFO, logger="yolo"):
        m.info()
        assert caplog.records[-1].getMessage() == info["summary_line"].replace("yolov8n summary", "YOLOv8n summary")
        m.eval().fuse().info()
    assert caplog.records[-1].getMessage() == (
        f"YOLOv8n summary (fused): {info['fused_n_layers']} layers, {info['fused_n_params']:,} parameters, "
        f"{info['fused_n_gradients']:,} gradients, {info['fused_gflops_640_str']} GFLOPs")


def load_seeded(name: str) -> tuple[Model, dict, torch.Tensor]:
    ref = torch.load(shared_path(REF, f"{name}_forward.pt"), weights_only=True)
    x = torch.load(shared_path(REF, "yolov8n_forward.pt"), weights_only=True)["input"] if name != "yolov8n" else ref["input"]
    m = Model(f"{name}.yaml")
    m.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ref["state_dict"].items()})
    return m, ref, x


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
def test_forward_matches_ultralytics(name, one_thread):
    m, ref, x = load_seeded(name)
    assert m.stride.tolist() == ref["stride"].tolist()
    with torch.no_grad():
        out, raw = m.eval()(x)
        assert out.shape == (2, 2100, 84)  # ours is (B, N, 4 + nc); ultralytics returns the transpose
        torch.testing.assert_close(out.transpose(1, 2), ref["eval_out"], atol=2e-3, rtol=0)
        points, strides = m.detect.anchor_points(raw)
        assert torch.equal(points.T, ref["anchors"]) and torch.equal(strides.T, ref["strides"])
        train = copy.deepcopy(m).train()
        for ours, theirs in zip(train(x), ref["train_level_outputs"]):
            torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
        for k, v in ref["train_bn_after_one_step"].items():
            torch.testing.assert_close(train.state_dict()[k].to(v.dtype), v, atol=1e-6, rtol=1e-5)
        m.load_state_dict(ref["calib_changed"], strict=False)
        # the fused tolerance is the original's own fused-vs-unfused difference (README: yolo11n scores 1.7e-5)
        for model, key, tol in ((m, "calib_eval_out", 1e-5), (copy.deepcopy(m).fuse(), "calib_fused_eval_out", 2e-5)):
            got = model(x)[0].transpose(1, 2)
            torch.testing.assert_close(got[:, :4], ref[key][:, :4], atol=2e-3, rtol=0)
            torch.testing.assert_close(got[:, 4:], ref[key][:, 4:], atol=tol, rtol=0)
        assert got[:, 4:].max() > 0.5  # the calibrated case is not the degenerate constant


def write(tmp_path, text: str, name: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


V8_TINY = """
nc: 3
scales:
  n: [0.33, 0.25, 1024]
  s: [0.33, 0.5, 256]
backbone:
  - [-1, 1, Conv, [64, 3, 2]]
  - [-1, 1, Conv, [128, 3, 2]]
  - [-1, 1, C2f, [128, True]]
  - [-1, 1, Conv, [256, 3, 2]]
  - [-1, 1, Conv, [512, 3, 2]]
head:
  - [[3, 4], 1, Detect, [nc]]
"""


def test_scale_from_name_key_and_max_channels(tmp_path):
    write(tmp_path, V8_TINY, "tiny8.yaml")
    n = Model(str(tmp_path / "tiny8n.yaml"))  # not on disk: tiny8.yaml at scale n
    s = Model(str(tmp_path / "tiny8s.yaml"))
    assert (n.yaml["scale"], s.yaml["scale"]) == ("n", "s")
    assert [layer.c_out for layer in n.model][:5] == [16, 32, 32, 64, 128]
    assert [layer.c_out for layer in s.model][:5] == [32, 64, 64, 128, 128]  # 512 capped at 256, x 0.5
    keyed = Model(write(tmp_path, V8_TINY + "scale: s\n", "keyed.yaml"))
    assert keyed.yaml["scale"] == "s" and [layer.c_out for layer in keyed.model][4] == 128


def test_unknown_scale_letter_names_the_file(tmp_path):
    write(tmp_path, V8_TINY, "tiny8.yaml")
    with pytest.raises(ModelConfigError, match=r"tiny8\.yaml: scale 'x' is not one of the file's scales \(n, s\)"):
        Model(str(tmp_path / "tiny8x.yaml"))
    with pytest.raises(ModelConfigError, match=r"bad\.yaml: scale 'q'"):
        Model(write(tmp_path, V8_TINY + "scale: q\n", "bad.yaml"))


def test_anchors_given_to_anchor_free_head_is_refused(tmp_path):
    text = V8_TINY + "anchors:\n  - [10,13, 16,30, 33,23]\n  - [30,61, 62,45, 59,119]\n"
    with pytest.raises(ModelConfigError, match=r"anchors\.yaml: layer 5 .*anchor-free .*`anchors:`"):
        Model(write(tmp_path, text, "anchors.yaml"))


def test_mismatched_detect_inputs_name_file_and_row(tmp_path):
    same_stride = V8_TINY.replace("[[3, 4], 1, Detect, [nc]]", "[[4, 4], 1, Detect, [nc]]")
    with pytest.raises(ModelConfigError, match=r"same\.yaml: layer 5 \(Detect, from \[4, 4\]\).*strides \[16.0, 16.0\]"):
        Model(write(tmp_path, same_stride, "same.yaml"))
    bad_args = V8_TINY.replace("Detect, [nc]]", "Detect, [nc, 16, 3]]")
    with pytest.raises(ModelConfigError, match=r"args\.yaml: layer 5 .*Detect takes \[nc, anchors\]"):
        Model(write(tmp_path, bad_args, "args.yaml"))


def test_yolov5_detect_rows_still_build_the_anchor_based_head():
    v5, v8 = Model("yolov5n.yaml"), Model("yolov8n.yaml")
    assert v5.detect.has_anchors and v5.detect.has_objectness and v5.detect.loss_name == "yolov5"
    assert not v8.detect.has_anchors and not v8.detect.has_objectness and v8.detect.loss_name == "tal"


def test_big_scales_switch_c3k_on():
    m = Model("yolo11m.yaml")
    assert type(m.model[2].m[0]).__name__ == "C3k"  # the row says False; the original forces c3k at m/l/x
    assert sum(p.numel() for p in m.parameters()) == 20114688  # the figure the original's yolo11.yaml states
