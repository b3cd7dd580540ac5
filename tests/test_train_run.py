"""Short real training runs: accumulation step count, resume after SIGKILL and resume equal to an uninterrupted
run, NaN stop (DDP: test_train_ddp.py)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from models import load_model
from models.checkpoint import read_checkpoint
from tests.demo_subset import demo_subset_yaml
from tests.same_image_data import no_augment_hyp, same_image_yaml
from train import train
from utils.train.loggers import read_results_csv
from utils.train import state as state_mod
from utils.train.options import TrainOptions

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--cfg", "yolov5n.yaml", "--imgsz", "64", "--noautoanchor", "--noplots", "--workers", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _train_cmd(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *args]


def _run(cmd: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_accumulate_4_batch_4_steps_once_per_16_images(tmp_path):
    data = demo_subset_yaml(tmp_path, 64, 8)
    opts = TrainOptions(data=str(data), cfg="yolov5n.yaml", imgsz=64, epochs=1, batch_size=4, accumulate=4,
                        noautoanchor=True, noplots=True, workers=0, project=str(tmp_path / "runs"), name="acc")
    res = train(opts)
    assert res.optimizer_steps == 64 // 16
    cols, rows = read_results_csv(res.save_dir / "results.csv")
    assert len(rows) == 1 and cols[0] == "epoch"
    state = read_checkpoint(res.last)["train_state"]
    assert state["opt"]["accumulate"] == 4 and state["finished"]
    assert (res.save_dir / "hyp.yaml").is_file() and (res.save_dir / "opt.yaml").is_file()
    assert list(res.save_dir.glob("events.out.tfevents.*")), "no TensorBoard event file"
    # weight decay is scaled to the number of images per optimizer step: 4 * 4 / 64
    assert yaml.safe_load((res.save_dir / "opt.yaml").read_text())["batch_size"] == 4


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> Path:
    """A 3-epoch run killed with SIGKILL during epoch 1 (after epoch 0's last.pt was written)."""
    tmp = tmp_path_factory.mktemp("killed")
    data = demo_subset_yaml(tmp, 32, 8)
    cmd = _train_cmd("--data", str(data), *FAST, "--epochs", "3", "--batch-size", "8", "--noval",
                     "--project", str(tmp / "runs"), "--name", "exp")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    last = tmp / "runs" / "exp" / "weights" / "last.pt"
    t0 = time.time()
    try:
        while not last.exists() and proc.poll() is None and time.time() - t0 < 240:
            time.sleep(0.05)
        time.sleep(0.3)  # into epoch 1
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the process and its dataloader worker
        proc.wait()
    assert last.exists(), "the run never wrote last.pt"
    return tmp / "runs" / "exp"


@pytest.mark.slow
def test_resume_after_sigkill_finishes_all_epochs(killed_run, tmp_path):
    run = tmp_path / "exp"
    shutil.copytree(killed_run, run)
    state = read_checkpoint(run / "weights" / "last.pt")["train_state"]
    assert state["epoch"] < 2 and "optimizer" in state, "run finished before it was killed"
    updates_before = state["ema_updates"]
    p = _run(_train_cmd("--resume", str(run / "weights" / "last.pt"), "--workers", "1"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"at epoch {state['epoch'] + 1}/3" in p.stderr
    cols, rows = read_results_csv(run / "results.csv")
    assert [int(r[0]) for r in rows] == list(range(3))  # every epoch once, none repeated or skipped
    final = read_checkpoint(run / "weights" / "last.pt")["train_state"]
    assert final["epoch"] == 2 and final["finished"]
    model = load_model(run / "weights" / "best.pt")
    out = model(torch.zeros(1, 3, 64, 64))[0]
    assert out.shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 9) and torch.isfinite(out).all()
    assert updates_before > 0


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_last(killed_run, tmp_path):
    run = tmp_path / "exp"
    shutil.copytree(killed_run, run)
    last = run / "weights" / "last.pt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    ckpt["train_state"]["model"]["model.0.conv.weight"].fill_(float("nan"))  # diverged raw weights
    torch.save(ckpt, last)
    before = last.read_bytes()
    p = _run(_train_cmd("--resume", str(last), "--workers", "0"))
    assert p.returncode == 1
    assert re.search(r"loss is not finite at epoch \d+, batch 0", p.stderr), p.stderr[-3000:]
    assert last.read_bytes() == before  # last.pt of the last finished epoch is kept untouched
    assert read_checkpoint(last)["train_state"]["epoch"] == ckpt["train_state"]["epoch"]


def _assert_same(a, b, where: str = "") -> None:
    """Nested dicts/lists of tensors and numbers equal (tensors to 1e-6)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=lambda m: f"{where}: {m}")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """3 epochs straight through on identical images without augmentation (so a resumed run sees the same
    batches whatever its sampler draws), 4 optimizer steps per epoch, warmup on, epoch<N>.pt every epoch."""
    tmp = tmp_path_factory.mktemp("straight")
    data, hyp = same_image_yaml(tmp, 16), no_augment_hyp(tmp)
    opts = TrainOptions(data=str(data), hyp=str(hyp), cfg="yolov5n.yaml", imgsz=64, epochs=3, batch_size=4,
                        accumulate=1, noval=True, noautoanchor=True, noplots=True, workers=0, save_period=1,
                        project=str(tmp / "runs"), name="exp")
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # as the resumed runs (one_thread): another thread count sums in another order
    try:
        res = train(opts)
    finally:
        torch.set_num_threads(n)
    assert res.optimizer_steps == 12
    return res.save_dir


def _resume_from_epoch0(run: Path, tmp: Path) -> Path:
    """A copy of the run as it stood after epoch 0, resumed to the end in this process."""
    from train import parse_opt

    copy = tmp / "exp"
    shutil.copytree(run, copy)
    for f in (copy / "weights").glob("*.pt"):
        if f.name != "epoch0.pt":
            f.unlink()
    train(parse_opt(["--resume", str(copy / "weights" / "epoch0.pt"), "--workers", "0"]))
    return copy


def _final_state(run: Path) -> dict:
    """Everything a resumed run must carry over, from epoch2.pt (written unstripped by --save-period)."""
    ckpt = read_checkpoint(run / "weights" / "epoch2.pt")
    s = ckpt["train_state"]
    return {"model": s["model"], "ema": ckpt["state_dict"], "ema_updates": s["ema_updates"],
            "optimizer": s["optimizer"], "last_opt_step": s["last_opt_step"], "epoch": s["epoch"]}


@pytest.mark.slow
def test_resume_equals_uninterrupted_run(uninterrupted, tmp_path):
    """Resumed after epoch 0: raw weights, optimizer (momentum buffers, lrs), EMA weights and update count,
    and the learning rate of every epoch (the scheduler) as in the run that was never stopped."""
    resumed = _resume_from_epoch0(uninterrupted, tmp_path)
    want, got = _final_state(uninterrupted), _final_state(resumed)
    assert want["ema_updates"] == 12 and len(want["optimizer"]["state"]) > 0
    _assert_same(got, want, "epoch2.pt")
    cols, rows = read_results_csv(resumed / "results.csv")
    cols0, rows0 = read_results_csv(uninterrupted / "results.csv")
    lr = [cols.index(c) for c in ("x/lr0", "x/lr1", "x/lr2")]
    assert [r[0] for r in rows] == [0, 1, 2]
    assert [[r[i] for i in lr] for r in rows] == [[r[i] for i in lr] for r in rows0]


def _restore_fresh_optimizer(state, model, optimizer, ema, ema_weights, scaler, _restore=state_mod.restore):
    """Broken variant: the optimizer state is not restored (a freshly built optimizer's is loaded)."""
    _restore({**state, "optimizer": optimizer.state_dict()}, model, optimizer, ema, ema_weights, scaler)


def _restore_ema_updates_reset(state, model, optimizer, ema, ema_weights, scaler, _restore=state_mod.restore):
    """Broken variant: the EMA weights are restored but its update count starts again at 0."""
    _restore({**state, "ema_updates": 0}, model, optimizer, ema, ema_weights, scaler)


@pytest.mark.slow
@pytest.mark.parametrize("broken", [_restore_fresh_optimizer, _restore_ema_updates_reset], ids=["optimizer", "ema"])
def test_resume_comparison_rejects_broken_restore(uninterrupted, tmp_path, monkeypatch, broken):
    monkeypatch.setattr(state_mod, "restore", broken)
    resumed = _resume_from_epoch0(uninterrupted, tmp_path)
    with pytest.raises(AssertionError):
        _assert_same(_final_state(resumed), _final_state(uninterrupted), "epoch2.pt")
