"""End to end under torchrun on CPU (gloo, 127.0.0.1): two "nodes" of one process train the weights one node of
two trains; an elastic run whose worker is SIGKILLed restarts and resumes by itself; --deterministic runs killed
at a random step and resumed end with the uninterrupted run's weights, on 1 process and on 2 DDP processes."""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.demo_subset import demo_subset_yaml
from utils.train.loggers import read_results_csv
from utils.train.step_state import newest_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300
FAST = ["--cfg", "yolov5n.yaml", "--imgsz", "64", "--noautoanchor", "--noplots", "--device", "cpu", "--threads", "1"]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def _train(*args: str) -> list[str]:
    return [str(ROOT / "train.py"), *args]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr[-4000:]
    return p


def _weights(path: Path, key: str = "state_dict") -> dict[str, torch.Tensor]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return ckpt[key] if key == "state_dict" else ckpt["train_state"][key]


def _assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str) -> None:
    assert a.keys() == b.keys(), what
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{what}: {len(differ)} of {len(a)} tensors differ, first {differ[:3]}"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return demo_subset_yaml(tmp_path_factory.mktemp("e2e"), 16, 4)


def test_two_nodes_of_one_process_train_the_weights_of_one_node_of_two(data, tmp_path):
    """Two torchrun agents (--nnodes 2, one process each) meet at one c10d endpoint; global rank 0 alone writes
    the run; last.pt and the raw weights of epoch0.pt equal those of one agent with --nproc_per_node 2."""
    args = _train("--data", str(data), *FAST, "--epochs", "1", "--batch-size", "8", "--workers", "0", "--noval",
                  "--save-period", "1", "--project", str(tmp_path))
    _run(_torchrun("--standalone", "--nproc_per_node", "2", *args, "--name", "one"))
    endpoint = f"127.0.0.1:{_free_port()}"
    nodes = [subprocess.Popen(
        _torchrun("--nnodes", "2", "--node_rank", str(r), "--nproc_per_node", "1", "--rdzv-backend", "c10d",
                  "--rdzv-endpoint", endpoint, "--rdzv-id", "two-nodes", *args, "--name", "two"),
        cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    errs = [p.communicate(timeout=TIMEOUT)[1] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], errs[0][-3000:] + errs[1][-3000:]
    assert "DDP: final weights identical on 2 ranks" in errs[0] + errs[1]
    assert not (tmp_path / "two2").exists()  # one run folder, chosen by global rank 0
    _assert_equal(_weights(tmp_path / "two/weights/last.pt"), _weights(tmp_path / "one/weights/last.pt"), "last.pt")
    _assert_equal(_weights(tmp_path / "two/weights/epoch0.pt", "model"),
                  _weights(tmp_path / "one/weights/epoch0.pt", "model"), "epoch0.pt raw weights")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _rank_of(pid: int) -> int:
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return next(int(e[5:]) for e in env if e.startswith(b"RANK="))


def test_elastic_restart_after_a_worker_is_killed_resumes_and_finishes(data, tmp_path):
    """2 processes, --max-restarts 1: rank 1 is SIGKILLed after a mid-epoch step checkpoint; torchrun restarts
    the group, which resumes from last_step.pt by itself and finishes; results.csv has each epoch once."""
    cmd = _torchrun("--nnodes", "1", "--nproc_per_node", "2", "--max-restarts", "1", "--rdzv-backend", "c10d",
                    "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--rdzv-id", "elastic-e2e",
                    *_train("--data", str(data), *FAST, "--epochs", "2", "--batch-size", "4", "--workers", "0",
                            "--accumulate", "1", "--noval", "--save-period-steps", "1", "--project", str(tmp_path),
                            "--name", "exp"))
    agent = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    log, killed = [], None
    try:
        for line in agent.stderr:
            log.append(line)
            if killed is None and "step checkpoint: epoch 1 batch 1 " in line:
                killed = next(p for p in _children(agent.pid) if _rank_of(p) == 1)
                os.kill(killed, signal.SIGKILL)
        agent.wait(timeout=TIMEOUT)
    finally:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
    text = "".join(log)
    assert killed and agent.returncode == 0, text[-4000:]
    assert "elastic restart 1 of run 'elastic-e2e': resuming from" in text and "last_step.pt" in text, text[-4000:]
    assert "at epoch 1/2, batch 1" in text
    _, rows = read_results_csv(tmp_path / "exp" / "results.csv")
    assert [int(r[0]) for r in rows] == [0, 1]
    final = torch.load(tmp_path / "exp/weights/last.pt", weights_only=True)["train_state"]
    assert final["epoch"] == 1 and final["finished"]
    assert not (tmp_path / "exp2").exists()


def _killed_and_resumed(launch: list[str], args: list[str], run: Path, k: int) -> subprocess.CompletedProcess:
    """Start the run, SIGKILL it (all its processes) after its k-th step checkpoint, resume from the newest."""
    p = subprocess.Popen([*launch, *_train(*args)], cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    n = 0
    try:
        for line in p.stderr:
            n += "step checkpoint:" in line
            if n == k:
                break
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    assert n == k, f"the run ended before its step checkpoint {k}"
    ckpt = newest_checkpoint(run / "weights")
    assert ckpt is not None
    return _run([*launch, *_train("--resume", str(ckpt), "--workers", "1", "--threads", "1")])


@pytest.mark.parametrize("ranks", [1, 2], ids=["1-process", "2-ddp"])
def test_deterministic_kill_at_a_random_step_and_resume_equals_the_uninterrupted_run(data, tmp_path, ranks):
    """--deterministic, a step checkpoint each optimizer step: killed after a random one of them and resumed,
    last.pt and the unstripped epoch1.pt (raw weights, optimizer) equal the run never killed, tensor for tensor."""
    launch = [sys.executable] if ranks == 1 else _torchrun("--standalone", "--nproc_per_node", "2")
    args = ["--data", str(data), *FAST, "--epochs", "2", "--batch-size", "4" if ranks == 1 else "8",
            "--accumulate", "1", "--workers", "1", "--noval", "--deterministic", "--save-period-steps", "1",
            "--save-period", "1", "--project", str(tmp_path)]
    _run([*launch, *_train(*args, "--name", "straight")])
    steps = 8 if ranks == 1 else 4  # 16 images / 4 per step, 2 epochs
    k = random.SystemRandom().randint(1, steps - 1)
    p = _killed_and_resumed(launch, [*args, "--name", "killed"], tmp_path / "killed", k)
    assert "Resuming training from" in p.stderr, p.stderr[-3000:]
    want, got = tmp_path / "straight/weights", tmp_path / "killed/weights"
    _assert_equal(_weights(got / "last.pt"), _weights(want / "last.pt"), f"last.pt (killed after step {k})")
    for key in ("model", "optimizer"):
        a, b = _weights(got / "epoch1.pt", key), _weights(want / "epoch1.pt", key)
        if key == "optimizer":
            a = {f"{i}.{n}": t for i, s in a["state"].items() for n, t in s.items() if torch.is_tensor(t)}
            b = {f"{i}.{n}": t for i, s in b["state"].items() for n, t in s.items() if torch.is_tensor(t)}
        _assert_equal(a, b, f"epoch1.pt {key} (killed after step {k})")
    _, rows = read_results_csv(tmp_path / "killed" / "results.csv")
    _, rows0 = read_results_csv(tmp_path / "straight" / "results.csv")
    assert rows == rows0, f"killed after step {k}"


def test_unreachable_rendezvous_is_a_one_line_error(data, tmp_path):
    """train.py as a rank whose MASTER_ADDR:MASTER_PORT nobody serves: after --dist-timeout, status 2 and one
    message naming the endpoint (not a hang, not a traceback)."""
    port = _free_port()
    env = {**_env(), "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port)}
    p = subprocess.run([sys.executable, *_train("--data", str(data), *FAST, "--dist-timeout", "3", "--project",
                                                str(tmp_path))], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2, p.stderr[-3000:]
    assert f"train.py: error: rank 1 of 2: the rendezvous at 127.0.0.1:{port} was not reached within 3s" in p.stderr
    assert "Traceback" not in p.stderr
