"""Backbone swaps: ConvNeXt rows and official checkpoints, timm/torchvision rows with Select, freezing."""
from __future__ import annotations

import copy
import math
import sys

import pytest
import torch

from models.backbones import OptionalDependencyError
from models.convnext_weights import BackboneWeightsError, load_convnext_backbone
from models.parse import ModelConfigError
from models.yolo import Model, load_model_yaml
from tests.sgd_steps import sgd_steps
from utils.freeze import freeze_layers, parse_freeze_arg

TINY = ([1, 1, 2, 1], [16, 32, 64, 128])
CONVNEXT_T = ([3, 3, 9, 3], [96, 192, 384, 768])


def official_convnext_state(depths, dims, num_classes=1000, seed=0) -> dict[str, torch.Tensor]:
    """Random tensors under the key names and shapes of the official ConvNeXt release (facebookresearch)."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"downsample_layers.0.0.weight": (dims[0], 3, 4, 4), "downsample_layers.0.0.bias": (dims[0],),
              "downsample_layers.0.1.weight": (dims[0],), "downsample_layers.0.1.bias": (dims[0],)}
    for i in range(1, len(dims)):
        shapes |= {f"downsample_layers.{i}.0.weight": (dims[i - 1],), f"downsample_layers.{i}.0.bias": (dims[i - 1],),
                   f"downsample_layers.{i}.1.weight": (dims[i], dims[i - 1], 2, 2),
                   f"downsample_layers.{i}.1.bias": (dims[i],)}
    for i, (depth, d) in enumerate(zip(depths, dims)):
        for j in range(depth):
            p = f"stages.{i}.{j}."
            shapes |= {p + "gamma": (d,), p + "dwconv.weight": (d, 1, 7, 7), p + "dwconv.bias": (d,),
                       p + "norm.weight": (d,), p + "norm.bias": (d,), p + "pwconv1.weight": (4 * d, d),
                       p + "pwconv1.bias": (4 * d,), p + "pwconv2.weight": (d, 4 * d), p + "pwconv2.bias": (d,)}
    shapes |= {"norm.weight": (dims[-1],), "norm.bias": (dims[-1],), "head.weight": (num_classes, dims[-1]),
               "head.bias": (num_classes,)}
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


def backbone_count(sd: dict) -> int:
    return sum(v.numel() for k, v in sd.items() if not k.startswith(("head.", "norm.")))


def convnext_yaml(depths, dims) -> dict:
    d, _ = load_model_yaml("yolov5n-convnext-tiny.yaml")
    d["backbone"][:4] = [[-1, 1, "ConvNeXt_Block", [dims[i], i, 3 if i == 0 else dims[i - 1], depths, dims]]
                         for i in range(4)]
    return d


# ---------------------------------------------------------------------------------------------- ConvNeXt
@pytest.fixture(scope="module")
def convnext_s():
    return Model("yolov5s-convnext.yaml")


def test_convnext_yaml_holds_exactly_one_convnext_tiny(convnext_s) -> None:
    rows = list(convnext_s.model)
    backbone = sum(m.np for m in rows[:4])
    official = backbone_count(official_convnext_state(*CONVNEXT_T))
    assert backbone == official  # 27,818,592: stages + downsampling, no classifier or final norm
    assert official == 27_818_592
    assert sorted(m.args[1] for m in rows[:4]) == [0, 1, 2, 3]
    total = sum(p.numel() for p in convnext_s.parameters())
    assert total == backbone + sum(m.np for m in rows[4:])


def test_convnext_tiny_matches_timm_count() -> None:
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        ref = timm.create_model("convnext_tiny", pretrained=False)
    timm_backbone = sum(p.numel() for n, p in ref.named_parameters() if not n.startswith("head."))
    assert timm_backbone == backbone_count(official_convnext_state(*CONVNEXT_T))


def test_official_convnext_tiny_loads_into_yolov5s_convnext(convnext_s) -> None:
    sd = official_convnext_state(*CONVNEXT_T, seed=1)
    model = copy.deepcopy(convnext_s)
    report = load_convnext_backbone(model, {"model": sd})
    assert set(report.skipped) == {"norm.weight", "norm.bias", "head.weight", "head.bias"}
    assert report.missing == [] and len(report.loaded) == len(sd) - 4
    stage = {m.args[1]: m for m in list(model.model)[:4]}
    for i in range(4):
        k = 1 if i == 0 else 0  # the stem's LayerNorm is its second part, the others' their first
        assert torch.equal(stage[i].downsample[k].weight, sd[f"downsample_layers.{i}.{k}.weight"])
        assert torch.equal(stage[i].stage[-1].pwconv2.weight, sd[f"stages.{i}.{CONVNEXT_T[0][i] - 1}.pwconv2.weight"])


def test_official_checkpoint_file_places_every_tensor(tmp_path) -> None:
    model = Model(convnext_yaml(*TINY))
    sd = official_convnext_state(*TINY)
    path = tmp_path / "convnext_fake_1k.pth"
    torch.save({"model": sd}, path)
    neck_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(("model.0.", "model.1.",
                                                                                           "model.2.", "model.3."))}
    report = load_convnext_backbone(model, path)
    rows = {m.args[1]: m.i for m in model.model if type(m).__name__ == "ConvNeXt_Block"}
    own = model.state_dict()
    for key, value in sd.items():
        part, i, rest = key.split(".", 2) if key.startswith(("stages", "downsample_layers")) else (key, None, None)
        if i is None:
            continue
        sub = "stage" if part == "stages" else "downsample"
        assert torch.equal(own[f"model.{rows[int(i)]}.{sub}.{rest}"], value), key
    assert len(report.loaded) == backbone_count({k: torch.zeros(1) for k in sd}) and not report.missing
    assert all(torch.equal(own[k], v) for k, v in neck_before.items())  # neck and head untouched


def test_convnext_loader_errors_and_report(tmp_path) -> None:
    model = Model(convnext_yaml(*TINY))
    wrong = official_convnext_state(TINY[0], [16, 32, 64, 256])
    with pytest.raises(BackboneWeightsError, match=r"'downsample_layers\.3\.1\.weight' has shape \(256, 64, 2, 2\).*"
                                                   r"'model\.3\.downsample\.1\.weight' has shape \(128, 64, 2, 2\)"):
        load_convnext_backbone(model, wrong)
    partial = {k: v for k, v in official_convnext_state(*TINY).items() if not k.startswith("stages.3.")}
    report = load_convnext_backbone(model, partial)
    assert report.missing and all(k.startswith("model.3.stage.0.") for k in report.missing)
    with pytest.raises(BackboneWeightsError, match="strict"):
        load_convnext_backbone(model, partial, strict=True)
    deeper = official_convnext_state([1, 1, 3, 1], TINY[1])
    assert "fewer blocks" in load_convnext_backbone(model, deeper).skipped["stages.2.2.gamma"]
    with pytest.raises(BackboneWeightsError, match="no key of the official ConvNeXt layout"):
        load_convnext_backbone(model, {"stem.0.weight": torch.zeros(16, 3, 4, 4)})
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_convnext_backbone(model, tmp_path / "nope.pth")


def test_convnext_tiny_trains() -> None:
    model = Model("yolov5n-convnext-tiny.yaml")
    before = copy.deepcopy(model.state_dict())
    losses = sgd_steps(model, steps=2)
    assert all(math.isfinite(x) for x in losses)
    key = "model.1.stage.0.pwconv1.weight"
    assert not torch.equal(before[key], model.state_dict()[key])


# ------------------------------------------------------------------------------------ timm / torchvision
@pytest.mark.parametrize("cfg", ["yolov5s-timm-resnet18.yaml", "yolov5s-tv-resnet18.yaml"])
def test_feature_backbone_yaml_builds_and_trains(cfg) -> None:
    if "timm" in cfg:
        pytest.importorskip("timm")
    model = Model(cfg)
    assert model.model[0].c_out == [128, 256, 512]
    assert [model.model[i].c_out for i in (1, 2, 3)] == [128, 256, 512]
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    before = copy.deepcopy(model.state_dict())
    losses = sgd_steps(model, steps=2)
    assert all(math.isfinite(x) for x in losses)
    after = model.state_dict()
    changed = [k for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k])]
    assert any(k.startswith("model.0.") for k in changed) and any(k.startswith("model.19.") for k in changed)
    model.eval()
    with torch.no_grad():
        pred, raw = model(torch.rand(1, 3, 64, 64))
    assert pred.shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 85) and len(raw) == 3


def test_width_multiple_scales_the_neck_not_the_backbone() -> None:
    d, _ = load_model_yaml("yolov5s-tv-resnet18.yaml")
    narrow = Model(dict(d, width_multiple=0.25))
    assert narrow.model[0].c_out == [128, 256, 512] and narrow.model[4].c_out == 256
    assert narrow.detect.m[0].in_channels == 64


def test_timm_weights_from_local_file(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    full = timm.create_model("resnet18", pretrained=False, num_classes=7)  # a classifier that does not fit
    path = tmp_path / "resnet18_timm.pth"
    torch.save(full.state_dict(), path)
    d, _ = load_model_yaml("yolov5s-timm-resnet18.yaml")
    d["backbone"][0][3] = ["resnet18", [2, 3, 4], str(path)]
    own = dict(Model(d).model[0].body.named_parameters())
    assert len(own) == len(list(full.parameters())) - 2  # all but the classifier
    assert all(torch.equal(v, full.state_dict()[k]) for k, v in own.items())
    torch.save(timm.create_model("resnet34", pretrained=False).state_dict(), path)
    with pytest.raises(ModelConfigError, match=r"resnet18_timm\.pth: does not fit the backbone.*unexpected"):
        Model(d)


def test_torchvision_weights_from_local_file(tmp_path) -> None:
    import torchvision

    full = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18_tv.pth"
    torch.save({"model": full.state_dict()}, path)
    d, _ = load_model_yaml("yolov5s-tv-resnet18.yaml")
    d["backbone"][0][3] = ["resnet18", ["layer2", "layer3", "layer4"], str(path)]
    own = dict(Model(d).model[0].body.named_parameters())
    assert len(own) == len(list(full.parameters())) - 2  # all but fc
    assert all(torch.equal(v, full.state_dict()[k]) for k, v in own.items())
    sd = full.state_dict()
    sd["layer2.0.conv1.weight"] = sd["layer2.0.conv1.weight"][:, :32]
    torch.save(sd, path)
    with pytest.raises(ModelConfigError, match=r"'layer2\.0\.conv1\.weight' has shape \(128, 32, 3, 3\)"):
        Model(d)


def test_missing_timm_is_reported_clearly(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` now raises ImportError
    with pytest.raises(ModelConfigError, match=r"yolov5s-timm-resnet18\.yaml: layer 0.*optional package 'timm'.*"
                                               r"pip install timm") as e:
        Model("yolov5s-timm-resnet18.yaml")
    assert isinstance(OptionalDependencyError("x"), ImportError)
    assert "TimmBackbone" in str(e.value)


def test_list_outputs_need_select_and_bad_rows_are_named() -> None:
    d, _ = load_model_yaml("yolov5s-tv-resnet18.yaml")
    bad = copy.deepcopy(d)
    bad["backbone"][1] = [0, 1, "Conv", [128, 1, 1]]
    with pytest.raises(ModelConfigError, match=r"layer 0 outputs a list of feature maps.*\[0, 1, Select, \[index\]\]"):
        Model(bad)
    bad = copy.deepcopy(d)
    bad["backbone"][3] = [0, 1, "Select", [3]]
    with pytest.raises(ModelConfigError, match="Select index 3 out of range for 3 feature maps"):
        Model(bad)
    bad = copy.deepcopy(d)
    bad["backbone"][0][3] = ["resnet1800", ["layer2"]]
    with pytest.raises(ModelConfigError, match="unknown model 'resnet1800'; did you mean"):
        Model(bad)
    bad["backbone"][0][3] = ["resnet18", ["layer9"]]
    with pytest.raises(ModelConfigError, match="'layer9' is not present"):
        Model(bad)


def test_pretrained_bn_statistics_survive_model_construction(tmp_path) -> None:
    import torchvision

    full = torchvision.models.resnet18(weights=None)
    for m in full.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "resnet18_tv.pth"
    torch.save(full.state_dict(), path)
    d, _ = load_model_yaml("yolov5s-tv-resnet18.yaml")
    d["backbone"][0][3] = ["resnet18", ["layer2", "layer3", "layer4"], str(path)]
    body = Model(d).model[0].body
    own = body.state_dict()
    assert torch.equal(own["layer2.0.bn1.running_var"], full.state_dict()["layer2.0.bn1.running_var"])
    bns = [m for m in body.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-5 for m in bns)  # the backbone keeps the eps it was trained with


def test_feature_backbone_checkpoint_round_trip() -> None:
    from models import model_from_checkpoint
    from models.checkpoint import make_checkpoint

    model = Model("yolov5s-tv-resnet18.yaml").eval()
    loaded = model_from_checkpoint(make_checkpoint(model)).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x)[0], loaded(x)[0])


# ------------------------------------------------------------------------------------------------- freeze
def test_parse_freeze_arg() -> None:
    assert parse_freeze_arg(["backbone"]) == "backbone"
    assert parse_freeze_arg(["10"]) == 10
    assert parse_freeze_arg(["0", "2"]) == [0, 2]
    with pytest.raises(ValueError, match="--freeze"):
        parse_freeze_arg(["head"])


def test_frozen_layers_and_bn_stats_do_not_change() -> None:
    model = Model("yolov5n.yaml")
    names = freeze_layers(model, 3)
    assert names and all(n.split(".")[1] in {"0", "1", "2"} for n in names)
    before = copy.deepcopy(model.state_dict())
    sgd_steps(model)  # calls model.train() first
    after = model.state_dict()
    frozen = [k for k in before if k.split(".")[1] in {"0", "1", "2"}]
    assert any(k.endswith("running_mean") for k in frozen)
    assert all(torch.equal(before[k], after[k]) for k in frozen)  # weights and BN statistics
    assert not model.model[0].bn.training and model.model[3].bn.training
    assert not torch.equal(before["model.3.conv.weight"], after["model.3.conv.weight"])
    assert not torch.equal(before["model.3.bn.running_mean"], after["model.3.bn.running_mean"])


def test_freeze_backbone_of_a_timm_model() -> None:
    pytest.importorskip("timm")
    d, _ = load_model_yaml("yolov5s-timm-resnet18.yaml")
    model = Model(dict(d, width_multiple=0.25))
    freeze_layers(model, "backbone")
    before = copy.deepcopy(model.state_dict())
    sgd_steps(model)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items() if k.split(".")[1] in {"0", "4"})
    assert not torch.equal(before["model.5.conv.weight"], after["model.5.conv.weight"])


def test_freeze_errors() -> None:
    model = Model("yolov5n-convnext-tiny.yaml")
    with pytest.raises(ValueError, match="out of range"):
        freeze_layers(model, [0, 99])
    with pytest.raises(ValueError, match="first 99 layers"):
        freeze_layers(model, 99)
    assert freeze_layers(model, 0) == []
    assert {n.split(".")[1] for n in freeze_layers(model, [1, 2])} == {"1", "2"}
