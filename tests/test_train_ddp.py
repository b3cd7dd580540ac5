"""DDP on CPU (gloo): each rank reads a disjoint half of the data, and 2 ranks train the same weights as one process
on the same global batch."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from models.checkpoint import read_checkpoint
from tests.demo_subset import demo_subset_yaml
from tests.same_image_data import no_augment_hyp, same_image_yaml
from train import parse_opt, train
from utils.data.dataloaders import create_dataloader
from utils.train import loop

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sampler_worker(rank: int, port: int, images: str, out: str) -> None:
    """One rank: the indices of the images its distributed loader yields in epochs 0 and 1."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        loader, ds = create_dataloader(images, 64, 4, 32, workers=0, shuffle=True, seed=0, distributed=True)
        seen = {}
        for epoch in (0, 1):
            loader.sampler.set_epoch(epoch)
            seen[epoch] = [ds.im_files.index(p) for _, _, paths, _ in loader for p in paths]
        Path(out, f"rank{rank}.json").write_text(json.dumps(seen))
    finally:
        dist.destroy_process_group()


def test_distributed_loader_gives_each_rank_a_disjoint_half(tmp_path):
    """2 gloo processes, 10 images, batch 4 per rank: 5 images each, disjoint, together all 10, reshuffled per epoch."""
    demo_subset_yaml(tmp_path, 10, 1)
    mp.start_processes(_sampler_worker, args=(_free_port(), str(tmp_path / "train.txt"), str(tmp_path)), nprocs=2,
                       join=True, start_method="fork")
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    for epoch in ("0", "1"):
        assert len(r0[epoch]) == len(r1[epoch]) == 5, (r0, r1)
        assert not set(r0[epoch]) & set(r1[epoch]), f"epoch {epoch}: both ranks read {set(r0[epoch]) & set(r1[epoch])}"
        assert sorted(r0[epoch] + r1[epoch]) == list(range(10))
    assert r0["0"] != r0["1"], "set_epoch did not reshuffle"


@pytest.fixture(scope="module")
def same_image_data(tmp_path_factory) -> tuple[Path, Path]:
    """16 copies of one demo image (and its labels), and a hyp without warmup, augmentation or large gradients.

    With identical images every micro-batch of 4 computes the same loss and BatchNorm statistics whichever
    images a rank draws, so 2 ranks x batch 4 x accumulate 2 and 1 process x batch 4 x accumulate 4 must give
    the same weights (16 images per optimizer step, the same weight decay). The loss gains are 1/100 of
    scratch-low's so the gradient norm stays under the clip at 10, which would otherwise normalise a wrong
    loss scale away."""
    tmp = tmp_path_factory.mktemp("ddp")
    hyp = yaml.safe_load((ROOT / "data" / "hyps" / "hyp.scratch-low.yaml").read_text())
    gains = {k: hyp[k] / 100 for k in ("box", "obj", "cls")}
    return same_image_yaml(tmp, 16), no_augment_hyp(tmp, warmup_epochs=0.0, **gains)


FAST = ["--cfg", "yolov5n.yaml", "--imgsz", "64", "--noautoanchor", "--noplots", "--epochs", "1", "--noval",
        "--save-period", "1"]


def _raw_weights(run: Path) -> dict[str, torch.Tensor]:
    """The trained (not EMA) parameters after epoch 0 (epoch0.pt is never stripped). BatchNorm running statistics
    are left out: one process runs 4 forward passes where each rank runs 2, so they are updated 4 and 2 times."""
    state = read_checkpoint(run / "weights" / "epoch0.pt")["train_state"]["model"]
    return {k: v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def _single_process(data: Path, hyp: Path, project: Path) -> dict[str, torch.Tensor]:
    """1 process, batch 4, --accumulate 4: one optimizer step over the 16 images, in this process, one thread.

    --seed 1: train.py seeds with seed + 1 + RANK (YOLOv5), RANK -1 here and 0 on the first DDP rank, whose
    initial weights DDP broadcasts; so --seed 1 here builds the model that --seed 0 builds there."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = train(parse_opt(["--data", str(data), "--hyp", str(hyp), *FAST, "--batch-size", "4", "--accumulate",
                               "4", "--seed", "1", "--workers", "0", "--project", str(project), "--name", "one"]))
    finally:
        torch.set_num_threads(n)
    assert res.optimizer_steps == 1
    return _raw_weights(res.save_dir)


@pytest.fixture(scope="module")
def single_process_weights(same_image_data, tmp_path_factory) -> dict[str, torch.Tensor]:
    return _single_process(*same_image_data, tmp_path_factory.mktemp("single"))


def test_half_loss_scale_is_detected(same_image_data, single_process_weights, tmp_path, monkeypatch):
    """The broken variant a rank without `loss * world_size` computes (half the gradient of 2 ranks) ends far
    outside the 1e-6 the DDP comparison allows, so that comparison can see a wrong loss scale."""
    forward_loss = loop.forward_loss
    monkeypatch.setattr(loop, "forward_loss", lambda ctx, imgs, t: (lambda lo, it: (lo / 2, it))(
        *forward_loss(ctx, imgs, t)))
    diff = _max_diff(_single_process(*same_image_data, tmp_path), single_process_weights)
    assert diff > 1e-4, f"half the loss moved the weights by only {diff:.3g}"


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


@pytest.mark.slow
def test_torchrun_two_ranks_train_the_single_process_weights(same_image_data, single_process_weights, tmp_path):
    """torchrun, 2 CPU ranks x batch 4, --accumulate 2 (the first backward under no_sync()): the ranks end
    identical and equal to the single-process run's parameters to 1e-6 (measured: bit-identical)."""
    data, hyp = same_image_data
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "train.py"), "--data", str(data), "--hyp", str(hyp), *FAST, "--batch-size", "8",
           "--accumulate", "2", "--seed", "0", "--workers", "0", "--device", "cpu", "--project", str(tmp_path),
           "--name", "ddp"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    m = re.search(r"DDP: final weights (\w+) on 2 ranks: \['(\w+)', '(\w+)'\]", p.stderr)
    assert m and m.group(1) == "identical" and m.group(2) == m.group(3), p.stderr[-3000:]
    ddp = _raw_weights(tmp_path / "ddp")
    diff = _max_diff(ddp, single_process_weights)
    assert diff < 1e-6, f"2-rank weights differ from the single-process run by up to {diff:.3g}"
