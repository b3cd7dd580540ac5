"""Bad model YAMLs: every error names the file, the row and what is wrong."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import yaml

from models.common import Conv
from models.parse import ModelConfigError
from models.registry import MODULES, register
from models.yolo import Model

BASE = """
nc: 2
depth_multiple: 0.33
width_multiple: 0.25
anchors:
  - [10,13, 16,30, 33,23]
  - [30,61, 62,45, 59,119]
backbone:
  [[-1, 1, Conv, [64, 6, 2, 2]],
   [-1, 1, Conv, [128, 3, 2]],
   [-1, 3, C3, [128]],
   [-1, 1, Conv, [256, 3, 2]],
   [-1, 1, SPPF, [256, 5]],
  ]
head:
  [[-1, 1, Conv, [128, 1, 1]],
   [-1, 1, nn.Upsample, [None, 2, 'nearest']],
   [[-1, 2], 1, Concat, [1]],
   [-1, 1, C3, [128, False]],
   [[8, 5], 1, Detect, [nc, anchors]],
  ]
"""


def write(tmp_path, text, name="my_model.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_base_yaml_builds(tmp_path):
    model = Model(write(tmp_path, BASE))
    assert model.stride.tolist() == [4.0, 8.0]


@pytest.mark.parametrize("old, new, expected", [
    ("[-1, 1, Conv, [128, 3, 2]]", "[-1, 1, Con, [128, 3, 2]]", ["layer 1", "backbone row 1", "'Con'", "Conv"]),
    ("[-1, 1, SPPF, [256, 5]]", "[-1, 1, SPPFF, [256, 5]]", ["layer 4", "SPPFF", "SPPF"]),
    ("[[-1, 2], 1, Concat, [1]]", "[[-1, 12], 1, Concat, [1]]", ["layer 7", "head row 2", "`from` index 12"]),
    ("[-1, 1, Conv, [256, 3, 2]]", "[-1, 1, Conv, [256, 3, 2, 1, 1, 1, 1, 1]]", ["layer 3", "cannot take args"]),
    ("[-1, 1, nn.Upsample, [None, 2, 'nearest']]", "[-1, 1, nn.Upsampel, [None, 2, 'nearest']]",
     ["layer 6", "nn.Upsample"]),
    ("[-1, 1, C3, [128, False]]", "[-1, one, C3, [128, False]]", ["layer 8", "number must be a positive int"]),
    ("[-1, 3, C3, [128]]", "[-1, 3, C3, 128]", ["layer 2", "args must be a list"]),
    ("[[8, 5], 1, Detect, [nc, anchors]]", "[[8, 5, 2], 1, Detect, [nc, anchors]]", ["layer 9", "2 anchor levels but 3"]),
])
def test_typo_errors_name_file_row_and_problem(tmp_path, old, new, expected):
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new))
    with pytest.raises(ModelConfigError) as e:
        Model(path)
    msg = str(e.value)
    assert str(path) in msg
    for part in expected:
        assert part in msg, (part, msg)


def test_unknown_module_suggests_close_names(tmp_path):
    with pytest.raises(ModelConfigError, match=r"did you mean .*Conv"):
        Model(write(tmp_path, BASE.replace("[-1, 1, Conv, [128, 3, 2]]", "[-1, 1, Cnv, [128, 3, 2]]")))


def test_spatial_mismatch_names_the_layer(tmp_path):
    # Concat of a stride-8 map with a stride-16 map (no upsample): caught by the stride probe.
    text = BASE.replace("[-1, 1, nn.Upsample, [None, 2, 'nearest']]", "[-1, 1, nn.Identity, []]")
    with pytest.raises(ModelConfigError, match=r"layer 7 .*Concat.*fails on input"):
        Model(write(tmp_path, text))


def test_convnext_channel_mismatch(tmp_path):
    text = BASE.replace("[-1, 1, Conv, [128, 3, 2]]",
                        "[-1, 1, ConvNeXt_Block, [192, 1, 80, [1, 1, 1, 1], [96, 192, 384, 768]]]")
    with pytest.raises(ModelConfigError, match=r"layer 1 .*channel mismatch.*in_channels=80.*16 channels"):
        Model(write(tmp_path, text))


def test_missing_section_and_not_a_mapping(tmp_path):
    with pytest.raises(ModelConfigError, match="missing or invalid `head:`"):
        Model(write(tmp_path, BASE.split("head:")[0]))
    with pytest.raises(ModelConfigError, match="must be a mapping"):
        Model(write(tmp_path, "- just a list\n"))
    with pytest.raises(ModelConfigError, match="not valid YAML"):
        Model(write(tmp_path, "nc: [1, 2\n"))


def test_bad_activation_is_refused_without_eval(tmp_path):
    for bad, match in [("__import__('os').system('true')", "unknown activation"), ("nn.LeakyReLU(x)", "literals"),
                       ("nn.Foo()", "unknown activation")]:
        with pytest.raises(ModelConfigError, match=match):
            Model(write(tmp_path, f"activation: \"{bad}\"\n" + BASE))


def test_two_activations_live_side_by_side(tmp_path):
    leaky = Model(write(tmp_path, "activation: nn.LeakyReLU(0.1)\n" + BASE, "leaky.yaml"))
    plain = Model(write(tmp_path, BASE, "plain.yaml"))
    leaky_convs = [m for m in leaky.modules() if isinstance(m, Conv)]
    plain_convs = [m for m in plain.modules() if isinstance(m, Conv)]
    assert all(isinstance(m.act, nn.LeakyReLU) and m.act.negative_slope == 0.1 for m in leaky_convs)
    assert all(isinstance(m.act, nn.SiLU) for m in plain_convs)
    assert len({id(m.act) for m in leaky_convs}) == len(leaky_convs)  # one module per conv, none shared
    x = torch.rand(1, 3, 64, 64)
    assert isinstance(Conv(3, 8).act, nn.SiLU)  # nothing class-level changed
    leaky.eval(), plain.eval()
    with torch.no_grad():
        assert leaky(x)[0].shape == plain(x)[0].shape


def test_user_registered_block(tmp_path):
    name = "TestOnlyDoubleConv"
    if name not in MODULES:
        @register(name, layout="conv")
        class DoubleConv(nn.Module):
            def __init__(self, c1, c2, k=3, act=True):
                super().__init__()
                self.a, self.b = Conv(c1, c2, k, act=act), Conv(c2, c2, k, act=act)

            def forward(self, x):
                return self.b(self.a(x))

    with pytest.raises(KeyError, match="already registered"):
        register(name)(nn.Identity)
    model = Model(write(tmp_path, BASE.replace("[-1, 1, SPPF, [256, 5]]", f"[-1, 6, {name}, [256]]")))
    layer = model.model[4]
    assert isinstance(layer, nn.Sequential) and len(layer) == 2  # 6 repeats * depth 0.33 -> 2 chained copies
    assert layer[0].a.conv.out_channels == 64  # 256 * width 0.25


def test_yaml_names_resolve_from_keys_not_eval(tmp_path):
    d = yaml.safe_load(BASE)
    d["head"][-1][3] = ["nc", "anchors"]
    d["nc"] = 5
    model = Model(d)
    assert model.detect.nc == 5 and model.detect.no == 10
