"""Short real training runs: accumulation step count, resume after SIGKILL, NaN stop, torchrun DDP."""
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
from train import train
from utils.train.loggers import read_results_csv
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


@pytest.mark.slow
def test_torchrun_two_cpu_processes_identical_weights(tmp_path):
    """2 ranks x 4 images, 2 batches per rank, --accumulate 2: the first backward runs under no_sync()."""
    data = demo_subset_yaml(tmp_path, 16, 4)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "train.py"), "--data", str(data), *FAST, "--epochs", "1", "--batch-size", "8",
           "--accumulate", "2", "--device", "cpu", "--project", str(tmp_path / "runs"), "--name", "ddp"]
    p = _run(cmd, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    m = re.search(r"DDP: final weights (\w+) on 2 ranks: \['(\w+)', '(\w+)'\]", p.stderr)
    assert m, p.stderr[-3000:]
    assert m.group(1) == "identical" and m.group(2) == m.group(3)
    state = read_checkpoint(tmp_path / "runs" / "ddp" / "weights" / "last.pt")["train_state"]
    assert state["epoch"] == 0
