"""End-to-end checks of train.py flags on tiny runs (yolov5n, 64 px, a few dozen demo images)."""
from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import cv2
import pytest
import torch
import yaml

import train as train_mod
from models import load_model
from models.checkpoint import read_checkpoint
from tests.demo_subset import demo_subset_yaml
from utils.data.dataloaders import LoadImagesAndLabels
from utils.train import loop
from utils.train.loggers import read_results_csv

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--cfg", "yolov5n.yaml", "--imgsz", "64", "--noautoanchor", "--noplots", "--batch-size", "8"]

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _train(tmp: Path, name: str, *flags: str) -> train_mod.TrainResult:
    """train.py's own argument parser and train(), in this process (so hooks and caplog see the run)."""
    opts = train_mod.parse_opt([*FAST, "--project", str(tmp / "runs"), "--name", name, *flags])
    return train_mod.train(opts)


def _epochs_logged(save_dir: Path) -> list[int]:
    return [int(r[0]) for r in read_results_csv(save_dir / "results.csv")[1]]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return demo_subset_yaml(tmp_path_factory.mktemp("data"), 16, 8)


@pytest.fixture(scope="module")
def mosaic_run(tmp_path_factory, data):
    """3 epochs, --close-mosaic 1 --save-period 1, one persistent dataloader worker.

    Each sample is tagged in the worker (where it is really built) with whether load_mosaic made it; the
    tags come back through the batch's paths, which the loop hands to _plot_batch with the iteration.
    Returns (result, {epoch: [used mosaic per sample]}).
    """
    tmp = tmp_path_factory.mktemp("mosaic")
    get_item, load_mosaic = LoadImagesAndLabels.__getitem__, LoadImagesAndLabels.load_mosaic
    plot_batch, seen = loop._plot_batch, {}

    def tagged_getitem(self, index):
        self._made_mosaic = False
        im, out, path, shapes = get_item(self, index)
        return im, out, f"{path}|mosaic={self._made_mosaic}", shapes

    def flagged_mosaic(self, index):
        self._made_mosaic = True
        return load_mosaic(self, index)

    def record(ctx, ni, imgs, targets, paths):
        seen.setdefault(ni // len(ctx.loader), []).extend(p.endswith("mosaic=True") for p in paths)
        return plot_batch(ctx, ni, imgs, targets, paths)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LoadImagesAndLabels, "__getitem__", tagged_getitem)
        mp.setattr(LoadImagesAndLabels, "load_mosaic", flagged_mosaic)
        mp.setattr(loop, "_plot_batch", record)
        res = _train(tmp, "mosaic", "--data", str(data), "--epochs", "3", "--close-mosaic", "1",
                     "--save-period", "1", "--workers", "1", "--noval")
    return res, seen


@pytest.mark.slow
def test_close_mosaic_last_epoch_without_mosaic(mosaic_run):
    res, seen = mosaic_run
    assert sorted(seen) == [0, 1, 2] and all(len(v) == 16 for v in seen.values())
    assert all(seen[0]) and all(seen[1]), "epochs before the last must use mosaic (hyp mosaic 1.0)"
    assert not any(seen[2]), "the last epoch (--close-mosaic 1) still built mosaics in the worker"
    assert _epochs_logged(res.save_dir) == [0, 1, 2]


@pytest.mark.slow
def test_save_period_writes_loadable_epoch_checkpoints(mosaic_run):
    res, _ = mosaic_run
    w = res.save_dir / "weights"
    assert sorted(p.name for p in w.glob("epoch*.pt")) == ["epoch0.pt", "epoch1.pt", "epoch2.pt"]
    for e in range(3):
        assert read_checkpoint(w / f"epoch{e}.pt")["train_state"]["epoch"] == e
        model = load_model(w / f"epoch{e}.pt")
        out = model(torch.zeros(1, 3, 64, 64))[0]
        assert out.shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 9) and torch.isfinite(out).all()


@pytest.mark.slow
def test_patience_stops_when_fitness_cannot_improve(mosaic_run, tmp_path, caplog):
    """Resume epoch0.pt (a full training state) with best fitness 1.0, the maximum, and --patience 1.

    Fitness is 0.1 mAP50 + 0.9 mAP50-95 <= 1 and an untrained 64 px model scores far below it, so epoch 1
    cannot improve and the run must stop after it, 2 of 5 epochs. (lr0 0 does not work for this: an
    unchanged fitness counts as an improvement in YOLOv5's rule, fi >= best.)
    """
    res, _ = mosaic_run
    run = tmp_path / "exp"
    shutil.copytree(res.save_dir, run)
    for f in (run / "weights").glob("epoch[12].pt"):
        f.unlink()
    ckpt = torch.load(run / "weights" / "epoch0.pt", map_location="cpu", weights_only=True)
    ckpt["train_state"]["best_fitness"] = 1.0
    ckpt["train_state"]["opt"].update(patience=1, epochs=5, save_period=-1, close_mosaic=0)
    torch.save(ckpt, run / "weights" / "epoch0.pt")
    shutil.copy(run / "weights" / "epoch0.pt", run / "weights" / "best.pt")  # the best epoch so far: 0
    with caplog.at_level(logging.INFO, logger="yolo"):
        out = train_mod.train(train_mod.parse_opt(["--resume", str(run / "weights" / "epoch0.pt"), "--workers", "0"]))
    assert "Stopping training early as no improvement observed in last 1 epochs" in caplog.text
    assert _epochs_logged(run) == [0, 1]  # 2 of --epochs 5
    assert out.epochs_done == 2 and out.last and out.best
    assert read_checkpoint(out.last)["train_state"]["epoch"] == 1
    best = read_checkpoint(out.best)["train_state"]
    assert best["epoch"] == 0 and best["finished"]  # kept (nothing beat it), stripped at the end


def test_multi_scale_and_bf16_on_cpu(data, tmp_path, monkeypatch):
    """--multi-scale feeds batches of several sizes; --bf16 runs the forward in bfloat16; losses stay finite."""
    forward_loss, sizes, dtypes = loop.forward_loss, [], set()

    def record(ctx, imgs, targets):
        sizes.append(tuple(imgs.shape[2:]))
        h = ctx.model.model[0].register_forward_hook(lambda m, i, o: dtypes.add(o.dtype))
        try:
            return forward_loss(ctx, imgs, targets)
        finally:
            h.remove()

    monkeypatch.setattr(loop, "forward_loss", record)
    res = _train(tmp_path, "ms", "--data", str(data), "--epochs", "2", "--workers", "0", "--noval",
                 "--multi-scale", "--bf16")
    assert len(sizes) == 4 and len(set(sizes)) > 1, sizes
    assert all(h % 32 == 0 and 32 <= h <= 96 for s in sizes for h in s), sizes
    assert dtypes == {torch.bfloat16}
    _, rows = read_results_csv(res.save_dir / "results.csv")
    assert len(rows) == 2 and all(math.isfinite(x) for r in rows for x in r[1:4])
    assert all(r[1] > 0 for r in rows)  # a real box loss was computed


@pytest.fixture(scope="module")
def wide_tall_data(tmp_path_factory) -> Path:
    """16 demo images squeezed to 256x128 (8, aspect h/w 0.5) and 128x256 (8, aspect 2), labels unchanged
    (normalised boxes survive an anisotropic resize), so --rect batches are not square."""
    from utils.data.data_yaml import load_data_yaml
    from utils.data.files import img2label_paths

    tmp = tmp_path_factory.mktemp("widetall")
    cfg = load_data_yaml(demo_subset_yaml(tmp, 16, 8))
    (tmp / "images").mkdir()
    (tmp / "labels").mkdir()
    files = [ln for ln in (tmp / "train.txt").read_text().splitlines() if ln]
    for n, (f, lb) in enumerate(zip(files, img2label_paths(files))):
        wh = (256, 128) if n % 2 else (128, 256)
        cv2.imwrite(str(tmp / "images" / f"{n}.png"), cv2.resize(cv2.imread(f), wh, interpolation=cv2.INTER_AREA))
        shutil.copy(lb, tmp / "labels" / f"{n}.txt")
    f = tmp / "widetall.yaml"
    f.write_text(yaml.safe_dump({"path": str(tmp), "train": "images", "val": "images", "names": cfg.names}))
    return f


@pytest.fixture
def no_warmup_hyp(tmp_path) -> Path:
    """hyp.scratch-low without warmup: each epoch's logged lr is then lr0 * lf(epoch) exactly."""
    text = (ROOT / "data" / "hyps" / "hyp.scratch-low.yaml").read_text()
    assert "warmup_epochs: 3.0" in text
    f = tmp_path / "hyp.nowarmup.yaml"
    f.write_text(text.replace("warmup_epochs: 3.0", "warmup_epochs: 0.0"))
    return f


def _cosine(x: float, epochs: int, lrf: float) -> float:
    """YOLOv5's one-cycle cosine multiplier, written out here (not imported) so the test is independent."""
    return lrf + (1 - lrf) * (1 + math.cos(math.pi * x / epochs)) / 2


def _linear(x: float, epochs: int, lrf: float) -> float:
    return 1 - (1 - lrf) * x / epochs


def _record_batches(monkeypatch) -> tuple[list, set]:
    """Patch loop.forward_loss to record each batch's (h, w) and every target value the class BCE receives."""
    forward_loss, shapes, cls_targets = loop.forward_loss, [], set()

    def record(ctx, imgs, targets):
        shapes.append(tuple(imgs.shape[2:]))
        bce = ctx.compute_loss.bce_cls
        if not getattr(bce, "recording", False):
            def bce_record(pred, t):
                cls_targets.update(round(v, 6) for v in t.unique().tolist())
                return bce(pred, t)
            bce_record.recording = True
            ctx.compute_loss.bce_cls = bce_record
        return forward_loss(ctx, imgs, targets)

    monkeypatch.setattr(loop, "forward_loss", record)
    return shapes, cls_targets


def test_rect_cos_lr_adamw_label_smoothing_take_effect(wide_tall_data, no_warmup_hyp, tmp_path, caplog,
                                                       monkeypatch):
    """The effect of each flag, not its echo: --rect batch shapes, the --cos-lr LR curve in results.csv,
    the --label-smoothing targets of the class BCE, AdamW param groups."""
    shapes, cls_targets = _record_batches(monkeypatch)
    epochs, lrf = 3, 0.01
    with caplog.at_level(logging.INFO, logger="yolo"):
        res = _train(tmp_path, "combo", "--data", str(wide_tall_data), "--hyp", str(no_warmup_hyp), "--epochs",
                     str(epochs), "--workers", "0", "--noval", "--accumulate", "1", "--rect", "--cos-lr",
                     "--optimizer", "AdamW", "--label-smoothing", "0.1")
    assert "AdamW" in caplog.text and yaml.safe_load(no_warmup_hyp.read_text())["lrf"] == lrf
    # --rect: aspect 0.5 images -> [0.5, 1] * 64 = 32x64 batches, aspect 2 -> 64x32 (h, w), never 64x64
    assert sorted(set(shapes)) == [(32, 64), (64, 32)] and len(shapes) == 2 * epochs, shapes
    # --label-smoothing 0.1: class targets 1 - 0.05 and 0.05 instead of 1 and 0
    assert cls_targets == {0.05, 0.95}, cls_targets
    # --cos-lr: lr0 * cosine(epoch), which differs from the linear schedule at every epoch after the first
    cols, rows = read_results_csv(res.save_dir / "results.csv")
    lr0 = yaml.safe_load(no_warmup_hyp.read_text())["lr0"]
    for e, row in enumerate(rows):
        for col in ("x/lr0", "x/lr1", "x/lr2"):
            assert row[cols.index(col)] == pytest.approx(lr0 * _cosine(e, epochs, lrf), rel=1e-4), (e, col)
        if e:
            assert abs(_cosine(e, epochs, lrf) - _linear(e, epochs, lrf)) > 0.05
    assert len(rows) == epochs and all(math.isfinite(x) for r in rows for x in r[1:])


def test_defaults_linear_lr_square_batches_hard_targets(wide_tall_data, no_warmup_hyp, tmp_path, monkeypatch):
    """The same run without the flags: linear LR, square 64x64 batches, class targets 0 and 1 (so the
    effects above are the flags', not the data's)."""
    shapes, cls_targets = _record_batches(monkeypatch)
    res = _train(tmp_path, "plain", "--data", str(wide_tall_data), "--hyp", str(no_warmup_hyp), "--epochs", "2",
                 "--workers", "0", "--noval", "--accumulate", "1")
    assert set(shapes) == {(64, 64)} and cls_targets == {0.0, 1.0}
    cols, rows = read_results_csv(res.save_dir / "results.csv")
    lr0 = yaml.safe_load(no_warmup_hyp.read_text())["lr0"]
    assert [r[cols.index("x/lr0")] for r in rows] == pytest.approx([lr0 * _linear(e, 2, 0.01) for e in range(2)],
                                                                   rel=1e-4)


def test_single_cls(data, tmp_path):
    res = _train(tmp_path, "single", "--data", str(data), "--epochs", "1", "--workers", "0", "--single-cls")
    ckpt = read_checkpoint(res.last)
    assert ckpt["names"] == ["item"]
    model = load_model(res.last)
    assert model.detect.nc == 1 and model.yaml["nc"] == 1
    assert model(torch.zeros(1, 3, 64, 64))[0].shape[-1] == 6  # xywh, obj, one class
    cols, rows = read_results_csv(res.save_dir / "results.csv")
    assert len(rows) == 1 and all(math.isfinite(x) for r in rows for x in r[1:])
    assert rows[0][cols.index("train/cls_loss")] == 0 and rows[0][cols.index("train/box_loss")] > 0  # objectness only


@pytest.mark.slow
def test_weights_transfer_all_and_freeze_backbone(mosaic_run, data, tmp_path, caplog):
    """--weights our last.pt (no --cfg: its own YAML and anchors) moves every tensor; --freeze backbone keeps
    those layers' tensors bit-identical. (With --cfg the anchors are excluded, 348/349, as in YOLOv5.)"""
    res, _ = mosaic_run
    src = read_checkpoint(res.last)["state_dict"]
    with caplog.at_level(logging.INFO, logger="yolo"):
        out = _train(tmp_path, "ft", "--data", str(data), "--epochs", "1", "--workers", "0", "--noval",
                     "--weights", str(res.last), "--cfg", "", "--freeze", "backbone", "--save-period", "1")
    n = len(src)
    assert f"Transferred {n}/{n} items from {res.last}" in caplog.text
    raw = read_checkpoint(out.save_dir / "weights" / "epoch0.pt")["train_state"]["model"]
    n_backbone = len(yaml.safe_load((ROOT / "models" / "yolov5n.yaml").read_text())["backbone"])
    is_backbone = {k: int(k.split(".")[1]) < n_backbone for k in raw}
    frozen = [k for k in raw if is_backbone[k] and "num_batches_tracked" not in k]
    trained = [k for k in raw if not is_backbone[k] and raw[k].is_floating_point()]
    assert frozen and trained
    for k in frozen:  # weights and BN running statistics of the backbone
        assert torch.equal(raw[k], src[k].float()), k
    assert any(not torch.equal(raw[k], src[k].float()) for k in trained), "the head did not train"
