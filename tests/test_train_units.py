"""Unit tests of the training pieces: optimizer groups, LR schedule and warmup, accumulation, options, outputs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from models.yolo import Model
from utils.torch_utils import set_train_threads, usable_cores
from utils.train.amp import Precision, check_amp
from utils.train.loggers import RESULT_KEYS, append_results_csv, read_results_csv
from utils.train.loop import accumulate_at, default_accumulate, multi_scale_resize
from utils.train.optim import build_optimizer, param_groups
from utils.train.options import TrainOptions
from utils.train.schedule import apply_warmup, build_scheduler, lr_lambda, warmup_accumulate, warmup_iters
from utils.train.transfer import transfer_weights

HYP = {"lr0": 0.01, "lrf": 0.01, "momentum": 0.937, "warmup_momentum": 0.8, "warmup_bias_lr": 0.1}


@pytest.fixture(scope="module")
def model() -> Model:
    torch.manual_seed(0)
    return Model("yolov5n.yaml", nc=4)


def test_param_groups_split_by_kind(model):
    decay, norm, bias = param_groups(model)
    n_bn = sum(1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    n_conv = sum(1 for m in model.modules() if isinstance(m, nn.Conv2d))
    assert len(norm) == n_bn  # every BN weight, nothing else
    assert len(decay) == n_conv  # conv weights (Detect's convs included)
    assert len(bias) == n_bn + 3  # BN biases + the 3 Detect conv biases
    assert len(decay) + len(norm) + len(bias) == len(list(model.parameters()))
    assert all(p.dim() == 4 for p in decay) and all(p.dim() == 1 for p in norm + bias)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_build_optimizer_groups_and_decay(model, name):
    opt = build_optimizer(model, name, lr=0.01, momentum=0.937, decay=5e-4)
    assert type(opt).__name__ == name
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 5e-4, 0.0]
    if name == "SGD":
        assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.937
    else:
        assert opt.param_groups[0]["betas"] == (0.937, 0.999)
    with pytest.raises(ValueError, match="RMSprop"):
        build_optimizer(model, "RMSprop")


def test_lr_lambda_linear_and_cosine():
    lin, cos = lr_lambda(10, 0.01), lr_lambda(10, 0.01, cos=True)
    assert lin(0) == pytest.approx(1.0) and lin(10) == pytest.approx(0.01) and lin(5) == pytest.approx(0.505)
    assert cos(0) == pytest.approx(1.0) and cos(10) == pytest.approx(0.01) and cos(5) == pytest.approx(0.505)
    assert cos(2) == pytest.approx(1 + (1 - math.cos(2 * math.pi / 10)) / 2 * (0.01 - 1))
    assert cos(2) > lin(2)  # cosine stays high longer


def test_scheduler_resume_position(model):
    """A scheduler built at start_epoch=k gives the same lr as one stepped k times."""
    a = build_optimizer(model, lr=0.01)
    sa = build_scheduler(a, epochs=10, lrf=0.01)
    for _ in range(3):
        a.step(), sa.step()
    b = build_optimizer(model, lr=0.01)
    b.load_state_dict(a.state_dict())  # as --resume does, before the scheduler is built
    sb = build_scheduler(b, epochs=10, lrf=0.01, start_epoch=3)
    assert [g["lr"] for g in b.param_groups] == pytest.approx([g["lr"] for g in a.param_groups])
    for _ in range(2):
        a.step(), b.step(), sa.step(), sb.step()
        assert [g["lr"] for g in b.param_groups] == pytest.approx([g["lr"] for g in a.param_groups])
    assert a.param_groups[0]["lr"] == pytest.approx(0.01 * lr_lambda(10, 0.01)(5))


def test_warmup_ramps_lr_and_momentum(model):
    opt = build_optimizer(model, lr=0.01, momentum=0.937)
    build_scheduler(opt, epochs=10, lrf=0.01)  # sets initial_lr
    nw = warmup_iters(3.0, nb=8)
    assert nw == 100 and warmup_iters(3.0, nb=50) == 150 and warmup_iters(0.0, nb=50) == -1
    apply_warmup(opt, 0, nw, HYP, lf_epoch=1.0)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.0, 0.0])
    assert opt.param_groups[1]["momentum"] == pytest.approx(0.8)
    apply_warmup(opt, 50, nw, HYP, lf_epoch=1.0)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.055, 0.005, 0.005])
    apply_warmup(opt, nw, nw, HYP, lf_epoch=0.9)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.009] * 3)
    assert opt.param_groups[2]["momentum"] == pytest.approx(0.937)


def test_accumulation_counts():
    assert default_accumulate(16) == 4 and default_accumulate(4) == 16 and default_accumulate(128) == 1
    assert warmup_accumulate(0, 100, 4.0) == 1 and warmup_accumulate(100, 100, 4.0) == 4
    assert warmup_accumulate(50, 100, 4.0) == 2  # round(2.5) -> 2 (numpy rounds half to even, as YOLOv5)
    assert [accumulate_at(i, 16, 100) for i in (0, 100, 500)] == [1, 4, 4]
    assert [accumulate_at(i, 16, 100, 3) for i in (0, 100, 500)] == [3, 3, 3]  # explicit: no warmup ramp


def test_multi_scale_sizes_are_grid_multiples():
    imgs = torch.zeros(2, 3, 64, 96)
    for _ in range(20):
        out = multi_scale_resize(imgs, 64, 32)
        assert out.shape[2] % 32 == 0 and out.shape[3] % 32 == 0
        assert 32 <= max(out.shape[2:]) <= 96 + 32



def test_train_threads_leave_a_core_on_cpu():
    """--threads 0 on CPU: one fewer than the cores (at least 1), never more than already set; N: N; GPU: as is."""
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(64)
        assert set_train_threads(0, torch.device("cpu")) == max(usable_cores() - 1, 1) == torch.get_num_threads()
        torch.set_num_threads(1)
        assert set_train_threads(0, torch.device("cpu")) == 1  # an OMP_NUM_THREADS=1 or an earlier choice holds
        assert set_train_threads(3, torch.device("cpu")) == 3
        assert set_train_threads(0, torch.device("cuda")) == 3
    finally:
        torch.set_num_threads(n)


def test_options_roundtrip_and_errors():
    o = TrainOptions(epochs=3, freeze=["10"], accumulate=4)
    assert TrainOptions.from_dict(o.to_dict()) == o
    with pytest.raises(KeyError, match="bogus"):
        TrainOptions.from_dict({**o.to_dict(), "bogus": 1}, "last.pt")
    with pytest.raises(ValueError, match="--batch-size"):
        TrainOptions(batch_size=0).validate()
    with pytest.raises(ValueError, match="--optimizer"):
        TrainOptions(optimizer="Lion").validate()


def test_parse_opt_yolov5_flags():
    from train import parse_opt
    o = parse_opt(["--img", "320", "--batch-size", "8", "--cos-lr", "--resume", "--cache", "--freeze", "10",
                   "--optimizer", "AdamW", "--accumulate", "2", "--label-smoothing", "0.1", "--close-mosaic", "3"])
    assert (o.imgsz, o.batch_size, o.cos_lr, o.resume, o.cache, o.freeze) == (320, 8, True, True, "ram", ["10"])
    assert (o.optimizer, o.accumulate, o.label_smoothing, o.close_mosaic) == ("AdamW", 2, 0.1, 3)
    assert parse_opt(["--resume", "runs/x/weights/last.pt"]).resume == "runs/x/weights/last.pt"


def test_results_csv_columns_and_roundtrip(tmp_path):
    f = tmp_path / "results.csv"
    append_results_csv(f, 0, list(np.arange(13) / 10))
    append_results_csv(f, 1, list(np.arange(13) / 100))
    cols, rows = read_results_csv(f)
    assert cols == ["epoch", "train/box_loss", "train/obj_loss", "train/cls_loss", "metrics/precision",
                    "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95", "val/box_loss", "val/obj_loss",
                    "val/cls_loss", "x/lr0", "x/lr1", "x/lr2"]
    assert rows[1][0] == 1 and rows[1][1:] == pytest.approx(list(np.arange(13) / 100))
    with pytest.raises(ValueError, match="13 values"):
        append_results_csv(f, 2, [0.0])
    assert len(RESULT_KEYS) == 13


def test_transfer_counts_matching_tensors(model):
    torch.manual_seed(1)
    other = Model("yolov5n.yaml", nc=80)  # different head shape: Detect convs do not transfer
    n, total = transfer_weights(model, other.state_dict())
    assert total == len(model.state_dict()) and n == total - 6  # 3 head conv weights + 3 biases
    assert torch.equal(model.state_dict()["model.0.conv.weight"], other.state_dict()["model.0.conv.weight"])
    n2, _ = transfer_weights(model, other.state_dict(), exclude=("anchor",))
    assert n2 == n - 1


def test_precision_on_cpu(model):
    assert check_amp(model, torch.device("cpu")) is False  # fp16 AMP is a CUDA feature
    p = Precision(torch.device("cpu"), bf16=True)
    assert p.enabled and not p.scaler.is_enabled()
    with p.autocast():
        y = nn.Linear(4, 4)(torch.ones(1, 4))
    assert y.dtype == torch.bfloat16
    assert not Precision(torch.device("cpu")).enabled


def test_apply_freeze_and_backbone_weights(tmp_path):
    """--backbone-weights loads an official-layout ConvNeXt file; --freeze backbone / N freezes those rows."""
    from models.yolo import Model
    from models.build import load_backbone_weights
    from utils.train.setup import apply_freeze

    model = Model("yolov5n-convnext-tiny.yaml", nc=2)
    stages = {row.args[1]: row for row in model.model if type(row).__name__ == "ConvNeXt_Block"}
    official = {}
    for i, row in stages.items():
        official.update({f"downsample_layers.{i}.{k}": torch.randn_like(v) for k, v in row.downsample.state_dict().items()})
        official.update({f"stages.{i}.{k}": torch.randn_like(v) for k, v in row.stage.state_dict().items()})
    torch.save({"model": official}, tmp_path / "convnext.pth")
    load_backbone_weights(model, tmp_path / "convnext.pth")
    frozen = apply_freeze(model, TrainOptions(freeze=["backbone"]))
    assert torch.equal(stages[0].stage[0].dwconv.weight, official["stages.0.0.dwconv.weight"])
    n_backbone = len(model.yaml["backbone"])
    assert frozen and all(int(name.split(".")[1]) < n_backbone for name in frozen)
    assert all(not p.requires_grad for p in model.model[0].parameters())
    assert all(p.requires_grad for p in model.model[-1].parameters())
    assert apply_freeze(Model("yolov5n.yaml"), TrainOptions(freeze=["0"])) == []
    assert {n.split(".")[1] for n in apply_freeze(Model("yolov5n.yaml"), TrainOptions(freeze=["3"]))} == {"0", "1", "2"}


def test_truncate_results_csv_drops_rows_after_the_resumed_checkpoint(tmp_path):
    from utils.train.loggers import truncate_results_csv

    path = tmp_path / "results.csv"
    for epoch in (0, 1, 2):
        append_results_csv(path, epoch, [float(epoch)] * len(RESULT_KEYS))
    assert truncate_results_csv(path, 2) == 1  # epoch 2 was logged, its checkpoint never written
    cols, rows = read_results_csv(path)
    assert cols[0] == "epoch" and [int(r[0]) for r in rows] == [0, 1]
    assert truncate_results_csv(path, 2) == 0 and truncate_results_csv(tmp_path / "none.csv", 0) == 0
