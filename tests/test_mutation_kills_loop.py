"""utils/train/loop.py in-process: one epoch against a hand-written reference of the same steps.

A one-conv model and a squared-error loss keep it exact and fast; the reference repeats YOLOv5's rules
(accumulate micro-batches until `ni - last_opt_step >= accumulate`, clip the gradient norm at 10, warmup on
iterations 0..nw, DDP scales the loss by the world size). docs/mutation_testing.md lists the mutants these kill.
"""
from __future__ import annotations

import copy
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from utils.train.amp import Precision
from utils.train.ddp import DistInfo
from utils.train.loop import (TrainingDiverged, _bar_text, _check_finite, _plot_batch, accumulate_at,
                              default_accumulate, forward_loss, header, multi_scale_resize, optimizer_step,
                              train_epoch)
from utils.train.options import TrainOptions
from utils.train.trainer import Trainer

HYP = {"warmup_bias_lr": 0.1, "warmup_momentum": 0.8, "momentum": 0.9}


def _loss(preds: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared error of the mean prediction against the mean target x, as a (1,) loss like ComputeLoss's."""
    err = (preds[0].mean() - targets[:, 2].mean()) ** 2
    loss = (err * 4).reshape(1)
    return loss, torch.stack((err, 2 * err, 3 * err)).detach()


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.conv(x)]


class _Ema:
    def __init__(self) -> None:
        self.updates = 0

    def update(self, model: nn.Module) -> None:
        self.updates += 1


class _Sampler:
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


class _Loader(list):
    sampler: _Sampler


def _batches(n: int = 4, size: int = 8) -> _Loader:
    g = torch.Generator().manual_seed(1)
    out = _Loader()
    for i in range(n):
        imgs = torch.randint(0, 256, (2, 3, size, size), generator=g, dtype=torch.uint8)
        targets = torch.tensor([[0, 0, 0.2 + 0.1 * i, 0.5, 0.1, 0.1], [1, 1, 0.7 - 0.1 * i, 0.5, 0.2, 0.2]])
        out.append((imgs, targets, (f"img{i}a.jpg", f"img{i}b.jpg"), None))
    out.sampler = _Sampler()
    return out


def _ctx(model: nn.Module, loader: list, lr: float = 0.05, accumulate: int | None = 2, nw: int = -1,
         dist: DistInfo = DistInfo(), ema: object = None, multi_scale: bool = False, plot_dir: Path | None = None,
         names: list[str] | None = None) -> Trainer:
    """A Trainer holding the tiny model's parts (what Trainer.setup() would build), 2 images per process."""
    optimizer = torch.optim.SGD([{"params": [model.conv.bias]}, {"params": [model.conv.weight]}], lr=lr,
                                momentum=0.0)
    for g in optimizer.param_groups:
        g["initial_lr"] = lr
    opts = TrainOptions(epochs=5, batch_size=2 * dist.world_size, imgsz=8, accumulate=accumulate,
                        multi_scale=multi_scale)
    t = Trainer(opts, dist, torch.device("cpu"))
    t.model = t.train_model = model
    t.loader, t.optimizer, t.compute_loss, t.ema = loader, optimizer, _loss, ema
    t.precision, t.hyp, t.lf = Precision(torch.device("cpu")), HYP, (lambda e: 1.0 - 0.1 * e)
    t.gs, t.nw, t.plot_dir, t.names = 4, nw, plot_dir, list(names or [])
    return t


def _reference(model: nn.Module, loader: list, lr: float, accumulate: int, world_size: int = 1) -> nn.Module:
    """The same epoch written out: gradient sums over `accumulate` batches, clip at norm 10, plain SGD step."""
    model = copy.deepcopy(model)
    params = [model.conv.bias, model.conv.weight]
    grads = [torch.zeros_like(p) for p in params]
    for i, (imgs, targets, _, _) in enumerate(loader):
        loss, _ = _loss(model(imgs.float() / 255), targets)
        g = torch.autograd.grad((loss * world_size).sum(), params)
        grads = [a + b for a, b in zip(grads, g)]
        if (i + 1) % accumulate == 0:
            norm = torch.sqrt(sum(x.pow(2).sum() for x in grads))
            scale = min(1.0, 10.0 / (float(norm) + 1e-6))
            with torch.no_grad():
                for p, x in zip(params, grads):
                    p -= lr * x * scale
            grads = [torch.zeros_like(p) for p in params]
    return model


def test_epoch_matches_the_reference_steps_and_mean_items() -> None:
    model, loader, ema = _Net(), _batches(), _Ema()
    want = _reference(model, loader, 0.05, 2)
    for p in model.parameters():
        p.grad = torch.full_like(p, 1e3)  # stale gradients must be cleared before the first micro-batch
    model.eval()
    ctx = _ctx(model, loader, ema=ema)
    mloss = train_epoch(ctx, 0)
    assert model.training
    assert ctx.optimizer_steps == 2 and ctx.last_opt_step == 3 and ema.updates == 2
    for got, exp in zip(model.parameters(), want.parameters()):
        torch.testing.assert_close(got, exp, rtol=1e-6, atol=1e-7)
    # mean of the per-batch items, each computed with the weights at that point
    ref, items = copy.deepcopy(_Net()), []
    ref_ctx = _ctx(ref, loader)
    for i, (imgs, targets, _, _) in enumerate(loader):
        loss, it = _loss(ref(imgs.float() / 255), targets)
        items.append(it)
        loss.backward()
        if i % 2 == 1:
            optimizer_step(ref_ctx)
    torch.testing.assert_close(mloss, torch.stack(items).mean(0), rtol=1e-5, atol=1e-7)
    assert loader.sampler.epochs == []  # set_epoch only under DDP


@pytest.mark.parametrize("accumulate", [1, 3])
def test_explicit_accumulate_sets_the_step_count(accumulate: int) -> None:
    ctx = _ctx(_Net(), _batches(6), accumulate=accumulate)
    train_epoch(ctx, 0)
    assert ctx.optimizer_steps == 6 // accumulate and ctx.last_opt_step == 5


def test_second_epoch_continues_the_iteration_count() -> None:
    ctx = _ctx(_Net(), _batches(3), accumulate=2)
    train_epoch(ctx, 0)  # steps at ni = 1
    train_epoch(ctx, 1)  # ni = 3, 4, 5: steps at 3 and 5
    assert ctx.optimizer_steps == 3 and ctx.last_opt_step == 5


def test_warmup_runs_over_iterations_0_to_nw() -> None:
    lrs: list[list[float]] = []
    ctx = _ctx(_Net(), _batches(4), accumulate=1, nw=2)

    def recording_loss(preds, targets):
        lrs.append([g["lr"] for g in ctx.optimizer.param_groups] + [g["momentum"] for g in ctx.optimizer.param_groups])
        return _loss(preds, targets)

    ctx.compute_loss = recording_loss
    train_epoch(ctx, 1)  # nb = 4, so ni = 4..7: past warmup, lr untouched
    assert all(row == lrs[0] for row in lrs)
    lrs.clear()
    for g in ctx.optimizer.param_groups:
        g["lr"] = 123.0
    train_epoch(ctx, 0)  # ni = 0..3 (the iteration count restarts only in this test)
    final = 0.05 * 1.0  # initial_lr * lf(0)
    assert lrs[0][:2] == pytest.approx([0.1, 0.0]) and lrs[0][2:] == pytest.approx([0.8, 0.8])
    assert lrs[1][:2] == pytest.approx([np.interp(1, [0, 2], [0.1, final]), np.interp(1, [0, 2], [0.0, final])])
    assert lrs[2][:2] == pytest.approx([final, final]) and lrs[2][2:] == pytest.approx([0.9, 0.9])
    assert lrs[3] == lrs[2]


def test_warmup_ramp_of_accumulation_without_explicit_value() -> None:
    # batch 16: target 64 / 16 = 4 micro-batches
    assert [accumulate_at(ni, 16, 100) for ni in (0, 50, 100, 101, 5000)] == [1, 2, 4, 4, 4]
    assert accumulate_at(101, 24, 100) == 3  # 64 / 24 = 2.67 -> 3 after warmup
    assert accumulate_at(101, 256, 100) == 1
    assert accumulate_at(0, 16, 100, 5) == 5 == accumulate_at(10 ** 6, 16, 100, 5)


def test_default_accumulate() -> None:
    assert [default_accumulate(b) for b in (1, 16, 24, 48, 64, 200)] == [64, 4, 3, 1, 1, 1]


def test_ddp_scales_the_loss_by_world_size_and_sets_the_sampler_epoch() -> None:
    model, loader = _Net(), _batches(2)
    imgs, targets = loader[0][0].float() / 255, loader[0][1]
    single, _ = forward_loss(_ctx(model, loader), imgs, targets)
    double, items = forward_loss(_ctx(model, loader, dist=DistInfo(rank=1, local_rank=1, world_size=2)), imgs, targets)
    torch.testing.assert_close(double, 2 * single)
    torch.testing.assert_close(items, _loss(model(imgs), targets)[1])
    want = _reference(model, loader, 0.05, 2, world_size=3)
    ctx = _ctx(model, loader, dist=DistInfo(rank=2, local_rank=0, world_size=3))
    ctx.last_opt_step = 13  # epoch 6 (2 batches) ended on a step, so epoch 7 steps after ni = 14, 15
    train_epoch(ctx, 7)
    assert loader.sampler.epochs == [7]
    for got, exp in zip(model.parameters(), want.parameters()):
        torch.testing.assert_close(got, exp, rtol=1e-6, atol=1e-7)


def test_bf16_forward_hands_float32_predictions_to_the_loss() -> None:
    seen = []
    model, loader = _Net(), _batches(1)
    ctx = _ctx(model, loader)
    ctx.precision = Precision(torch.device("cpu"), bf16=True)
    ctx.compute_loss = lambda preds, targets: (seen.append(preds[0].dtype), _loss(preds, targets))[1]
    forward_loss(ctx, loader[0][0].float() / 255, loader[0][1])
    assert seen == [torch.float32]


def test_clipping_limits_the_gradient_norm_to_10() -> None:
    model = _Net()
    ctx = _ctx(model, _batches(1), lr=1.0)
    before = [p.detach().clone() for p in ctx.optimizer.param_groups[0]["params"] + ctx.optimizer.param_groups[1]["params"]]
    for p in model.parameters():
        p.grad = torch.full_like(p, 100.0)
    optimizer_step(ctx)
    after = [p.detach() for p in ctx.optimizer.param_groups[0]["params"] + ctx.optimizer.param_groups[1]["params"]]
    step = torch.sqrt(sum((a - b).pow(2).sum() for a, b in zip(after, before)))
    assert float(step) == pytest.approx(10.0, rel=1e-5)
    assert all(p.grad is None for p in model.parameters())
    assert ctx.optimizer_steps == 1


def test_non_finite_loss_stops_with_where_it_happened() -> None:
    with pytest.raises(TrainingDiverged, match=r"epoch 3, batch 5 \(box=nan, obj=1, cls=2; first image a\.jpg\)"):
        _check_finite(torch.tensor([float("nan")]), torch.tensor([float("nan"), 1.0, 2.0]), 3, 5, ("a.jpg", "b.jpg"))
    with pytest.raises(TrainingDiverged, match=r"first image \?\)"):
        _check_finite(torch.tensor([float("inf")]), torch.zeros(3), 0, 0, ())
    _check_finite(torch.tensor([1.0]), torch.zeros(3), 0, 0, ())
    loader = _batches(2)
    ctx = _ctx(_Net(), loader)
    ctx.compute_loss = lambda preds, targets: (preds[0].sum().reshape(1) * float("nan"), torch.zeros(3))
    with pytest.raises(TrainingDiverged, match=r"epoch 4, batch 0 .*img0a\.jpg"):
        train_epoch(ctx, 4)


def test_multi_scale_sizes() -> None:
    imgs = torch.rand(2, 3, 64, 48)
    random.seed(0)
    sizes = set()
    for _ in range(60):
        out = multi_scale_resize(imgs, 64, 16)
        h, w = out.shape[2:]
        assert h % 16 == 0 and w % 16 == 0 and 32 <= h <= 96
        assert w == math.ceil(48 * h / 64 / 16) * 16
        sizes.add(h)
    assert sizes == {32, 48, 64, 80, 96}
    random.seed(3)
    draws = [random.randrange(32, 96 + 16) // 16 * 16 for _ in range(40)]
    random.seed(3)
    for sz in draws:
        out = multi_scale_resize(imgs, 64, 16)
        assert out.shape[2] == sz
        if sz == 64:
            assert out is imgs


def test_multi_scale_flag_resizes_inside_the_epoch() -> None:
    shapes = []
    ctx = _ctx(_Net(), _batches(4, size=16), multi_scale=True)
    ctx.imgsz, ctx.gs = 16, 8
    ctx.compute_loss = lambda preds, targets: (shapes.append(tuple(preds[0].shape[2:])), _loss(preds, targets))[1]
    random.seed(1)
    train_epoch(ctx, 0)
    assert {s[0] for s in shapes} <= {8, 16, 24} and len({s for s in shapes}) > 1


def test_header_and_bar_text() -> None:
    assert header() == ("      Epoch    GPU_mem   box_loss   obj_loss   cls_loss  Instances       Size")
    text = _bar_text(2, 10, torch.device("cpu"), torch.tensor([0.5, 0.25, 0.125]), 17, 640)
    assert text == "        2/9         0G        0.5       0.25      0.125         17        640"


def test_plot_batch_writes_the_first_three(tmp_path: Path) -> None:
    loader = _batches(1, size=32)
    ctx = _ctx(_Net(), loader, plot_dir=tmp_path, names=["a", "b"])
    imgs, targets, paths, _ = loader[0]
    for ni in range(5):
        _plot_batch(ctx, ni, imgs, targets, paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_batch0.jpg", "train_batch1.jpg", "train_batch2.jpg"]
    ctx.plot_dir = None
    _plot_batch(ctx, 0, imgs, targets, paths)


def test_epoch_over_a_plain_list_plots_its_first_batches(tmp_path: Path) -> None:
    """Any iterable of batches works (no .sampler needed); train_batch0-2.jpg show the batches with their labels."""
    from utils.plot_labels import plot_images

    batches = list(_batches(4, size=32))
    ctx = _ctx(_Net(), batches, plot_dir=tmp_path / "run", names=["a", "b"])
    (tmp_path / "run").mkdir()
    train_epoch(ctx, 0)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [f"train_batch{i}.jpg" for i in range(3)]
    imgs, targets, paths, _ = batches[1]
    plot_images(imgs, targets, paths, tmp_path / "want.jpg", ["a", "b"])
    assert (tmp_path / "run" / "train_batch1.jpg").read_bytes() == (tmp_path / "want.jpg").read_bytes()


def test_the_progress_bar_shows_epoch_losses_and_sizes(capsys: pytest.CaptureFixture) -> None:
    ctx = _ctx(_Net(), _batches(2, size=8))
    mloss = train_epoch(ctx, 3)
    err = capsys.readouterr().err
    assert _bar_text(3, 5, torch.device("cpu"), mloss, 2, 8) in err  # last batch: 2 labels, 8 px
    ctx.info = DistInfo(rank=1, local_rank=1, world_size=2)
    train_epoch(ctx, 4)
    assert capsys.readouterr().err == ""  # only the main process draws a bar
