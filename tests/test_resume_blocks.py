"""Exact-resume and multi-node building blocks: resumable data order, per-sample augmentation seeds, RNG state
capture, step checkpoints and the newest one to resume, elastic run lookup, per-node work and the rendezvous
timeout."""
from __future__ import annotations

import io
import json
import pickle
import random
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, DistributedSampler

from tests.demo_subset import demo_subset_yaml
from utils.cli import UserError
from utils.data.dataloaders import LoadImagesAndLabels
from utils.hyp import load_hyp
from utils.seeding import capture_rng_states, restore_rng_states
from utils.data.data_order import ResumableSampler, SeededIndex
from utils.train.ddp import DistInfo, init_process_group, local_main_first
from utils.train.resume import find_elastic_run, write_run_marker
from utils.train.step_state import newest_checkpoint, resume_position, step_due

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sampler_order_is_distributed_samplers_and_resumes_after_consumed():
    for rank in (0, 1):
        ref = DistributedSampler(range(11), num_replicas=2, rank=rank, shuffle=True, seed=5)
        s = ResumableSampler(11, rank, 2, seed=5)
        for epoch in (0, 1):
            ref.set_epoch(epoch)
            s.set_epoch(epoch)
            assert list(s) == list(ref)
    s = ResumableSampler(11, 1, 2, seed=5)
    full = s.indices(3)
    s.load_state_dict(s.state_dict(3, 4))
    assert list(s) == full[4:] and list(s) == s.indices(4)  # the skip applies to one pass only


def test_sampler_passes_number_themselves_under_prefetch():
    """A persistent loader starts pass 2 before set_epoch(1): it still gets epoch 1's order."""
    s = ResumableSampler(8, seed=0, epoch=0)
    first, second = list(s), list(s)
    s.set_epoch(1)  # late: pass 1 already began
    assert first == s.indices(0) and second == s.indices(1) and s.epoch == 2


def test_sampler_refuses_a_state_of_another_dataset():
    s = ResumableSampler(8, 0, 2)
    with pytest.raises(ValueError, match="8 images on 2 ranks"):
        ResumableSampler(9, 0, 2).load_state_dict(s.state_dict(0, 2))


@pytest.fixture(scope="module")
def augmented(tmp_path_factory) -> LoadImagesAndLabels:
    tmp = tmp_path_factory.mktemp("aug")
    demo_subset_yaml(tmp, 6, 1)
    hyp = load_hyp(ROOT / "data" / "hyps" / "hyp.scratch-low.yaml") | {"mixup": 0.5}
    return LoadImagesAndLabels(str(tmp / "train.txt"), 64, 2, augment=True, hyp=hyp)


def test_seeded_index_augments_the_same_whatever_came_before(augmented):
    k = SeededIndex(3, 1234)
    assert pickle.loads(pickle.dumps(k)).seed == 1234 and pickle.loads(pickle.dumps(k)) == 3
    a = augmented[k]
    for i in range(4):
        augmented[i]  # other draws in between
    b = augmented[k]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], augmented[SeededIndex(3, 99)][0])


def test_batches_do_not_depend_on_the_worker_count(augmented):
    def batches(workers: int) -> list:
        s = ResumableSampler(len(augmented), seed=0, sample_seeds=True, epoch=2)
        dl = DataLoader(augmented, batch_size=2, sampler=s, num_workers=workers,
                        collate_fn=LoadImagesAndLabels.collate_fn)
        return [(b[0], b[1]) for b in dl]
    for (a, ta), (b, tb) in zip(batches(0), batches(2)):
        assert torch.equal(a, b) and torch.equal(ta, tb)


def test_rng_states_round_trip_through_a_weights_only_checkpoint():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    buf = io.BytesIO()
    torch.save({"rng": capture_rng_states()}, buf)
    want = (random.random(), float(np.random.rand()), torch.rand(2))
    buf.seek(0)
    restore_rng_states(torch.load(buf, weights_only=True)["rng"])
    got = (random.random(), float(np.random.rand()), torch.rand(2))
    assert want[:2] == got[:2] and torch.equal(want[2], got[2])


def _state_ckpt(path: Path, epoch: int, mid: dict | None = None, finished: bool = False) -> None:
    state = {"epoch": epoch, "model": {}, "optimizer": {}, "ema_updates": 0, "opt": {}, "hyp": {}}
    if mid:
        state["mid_epoch"] = mid
    if finished:
        state = {"epoch": epoch, "finished": True}
    torch.save({"format": "yolo-yaml/1", "yaml": {}, "state_dict": {}, "names": [], "train_state": state}, path)


def test_newest_checkpoint_is_the_one_furthest_along(tmp_path):
    assert newest_checkpoint(tmp_path) is None
    _state_ckpt(tmp_path / "last.pt", 1)
    assert newest_checkpoint(tmp_path) == tmp_path / "last.pt"
    _state_ckpt(tmp_path / "last_step.pt", 1, {"epoch": 2, "batches_done": 3})
    assert newest_checkpoint(tmp_path) == tmp_path / "last_step.pt"
    _state_ckpt(tmp_path / "last_step.pt", 0, {"epoch": 1, "batches_done": 9})  # before last.pt's epoch end
    assert newest_checkpoint(tmp_path) == tmp_path / "last.pt"
    _state_ckpt(tmp_path / "last.pt", 5, finished=True)
    assert newest_checkpoint(tmp_path) == tmp_path / "last_step.pt"
    assert resume_position({"epoch": 1}) == (2, 0)
    assert [step_due(3, n) for n in (0, 1, 3, 6)] == [False, False, True, True] and not step_due(0, 5)


def test_elastic_run_found_by_its_rendezvous_id(tmp_path):
    for name, rid in (("exp", "a"), ("exp2", "b"), ("exp3", "a")):
        (tmp_path / name).mkdir()
        write_run_marker(tmp_path / name, rid)
        time.sleep(0.01)
    assert find_elastic_run(tmp_path, "a") == tmp_path / "exp3"
    assert find_elastic_run(tmp_path, "c") is None
    assert json.loads((tmp_path / "exp2" / "elastic.json").read_text()) == {"run_id": "b"}


def test_unreachable_rendezvous_times_out_with_a_clear_message(monkeypatch):
    port = _free_port()  # nothing listens there
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    t0 = time.time()
    with pytest.raises(UserError, match=rf"rendezvous at 127.0.0.1:{port} was not reached within 2s"):
        init_process_group(DistInfo(1, 1, 2), torch.device("cpu"), timeout_s=2)
    assert time.time() - t0 < 30 and not dist.is_initialized()


def _node_worker(rank: int, port: int, local_ranks: list[int], out: str) -> None:
    """One rank: inside local_main_first, record whether the node's marker file existed on entry."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        info = DistInfo(rank, local_ranks[rank], 2)
        node = Path(out, f"node{rank if local_ranks == [0, 0] else 0}")
        with local_main_first(info):
            existed = node.exists()
            if info.local_main:
                time.sleep(0.5)
                node.write_text("cache")
        Path(out, f"rank{rank}.json").write_text(json.dumps({"existed": existed, "local_main": info.local_main}))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("local_ranks", [[0, 1], [0, 0]], ids=["one-node", "two-nodes"])
def test_node_work_done_by_each_nodes_local_rank_0_first(tmp_path, local_ranks):
    """One node of 2: rank 1 waits for local rank 0's file. Two nodes of 1: each local rank 0 writes its own."""
    mp.start_processes(_node_worker, args=(_free_port(), local_ranks, str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    r = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]
    if local_ranks == [0, 1]:
        assert r[0] == {"existed": False, "local_main": True} and r[1] == {"existed": True, "local_main": False}
    else:
        assert all(x == {"existed": False, "local_main": True} for x in r)
        assert (tmp_path / "node0").exists() and (tmp_path / "node1").exists()


def _generate(root: str, out: str, i: int) -> None:
    from utils.data.demo_data import ensure_shapes_dataset
    ensure_shapes_dataset(root, n_train=30, n_val=2, imgsz=64)
    Path(out, f"ok{i}").write_text("done")


def test_two_nodes_generating_the_demo_dataset_on_one_disk_both_succeed(tmp_path):
    """Two local rank 0 processes on shared storage build the demo dataset at once: both end with it complete."""
    root = tmp_path / "shapes"
    procs = [mp.get_context("fork").Process(target=_generate, args=(str(root), str(tmp_path), i)) for i in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0] and (tmp_path / "ok0").exists() and (tmp_path / "ok1").exists()
    assert len(list((root / "images" / "train").glob("*.jpg"))) == 30
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".shapes-")]  # no leftover temp folders


def _no_checkpoint() -> None:
    raise UserError("no checkpoint in missing/")


def _rank0_worker(rank: int, port: int, out: str) -> None:
    from utils.train.resume import on_rank0

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        info = DistInfo(rank, rank, 2)
        got = on_rank0(lambda: f"from rank {dist.get_rank()}", info)
        try:
            on_rank0(_no_checkpoint, info)
            err = ""
        except UserError as e:
            err = str(e)
        Path(out, f"r{rank}.json").write_text(json.dumps({"got": got, "err": err}))
    finally:
        dist.destroy_process_group()


def test_on_rank0_hands_rank0s_result_or_its_error_to_every_rank(tmp_path):
    """What rank 0 reads reaches rank 1; a UserError on rank 0 is raised on rank 1 too (no rank left waiting)."""
    mp.start_processes(_rank0_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    for r in (0, 1):
        assert json.loads((tmp_path / f"r{r}.json").read_text()) == {"got": "from rank 0",
                                                                    "err": "no checkpoint in missing/"}


def test_a_restart_resumes_the_runs_newest_checkpoint_even_over_a_given_resume(tmp_path, monkeypatch):
    """Restart count 1: the recorded run's furthest checkpoint wins over --resume (its older last.pt) and over
    a fresh start; a run with no checkpoint yet starts again in its own folder."""
    from utils.train.options import TrainOptions
    from utils.train.resume import auto_resume

    run = tmp_path / "exp3"
    (run / "weights").mkdir(parents=True)
    write_run_marker(run, "job-7")
    _state_ckpt(run / "weights" / "last.pt", 0)
    _state_ckpt(run / "weights" / "last_step.pt", 0, {"epoch": 1, "batches_done": 2})
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-7")
    fresh = TrainOptions(project=str(tmp_path))
    assert auto_resume(fresh, DistInfo()).resume is False  # not restarted: as the command line says
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert auto_resume(TrainOptions(project=str(tmp_path)), DistInfo()).resume == str(run / "weights/last_step.pt")
    given = TrainOptions(project=str(tmp_path / "elsewhere"), resume=str(run / "weights" / "last.pt"))
    assert auto_resume(given, DistInfo()).resume == str(run / "weights/last_step.pt")
    (run / "weights" / "last.pt").unlink()
    (run / "weights" / "last_step.pt").unlink()
    again = auto_resume(TrainOptions(project=str(tmp_path), name="exp"), DistInfo())
    assert (again.resume, again.name, again.exist_ok) == (False, "exp3", True)
