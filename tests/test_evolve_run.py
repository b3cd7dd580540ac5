"""train.py --evolve end to end: 3 generations of 1 epoch, killed during the 3rd and continued; DDP generations."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.demo_subset import demo_subset_yaml
from utils.hyp import load_hyp
from utils.metrics import fitness
from utils.train.evolve import META, RESULT_KEYS, evolvable_hyp, read_evolve_csv

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--cfg", "yolov5n.yaml", "--imgsz", "64", "--noautoanchor", "--workers", "0", "--batch-size", "4",
        "--epochs", "1"]
BASE = evolvable_hyp(load_hyp(ROOT / "data" / "hyps" / "hyp.scratch-low.yaml"), autoanchor=False)

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _cmd(data: Path, project: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), "--data", str(data), *FAST, "--project", str(project), *extra]


def _rows(csv: Path) -> int:
    return max(len(csv.read_text().splitlines()) - 1, 0) if csv.exists() else 0


@pytest.fixture(scope="module")
def evolved(tmp_path_factory) -> tuple[Path, list[str], subprocess.CompletedProcess]:
    """--evolve 3 killed (SIGKILL) while generation 3 trains, then the same command again."""
    tmp = tmp_path_factory.mktemp("evolve")
    data = demo_subset_yaml(tmp, 8, 4)
    cmd = _cmd(data, tmp / "runs", "--evolve", "3")
    csv = tmp / "runs" / "exp" / "evolve.csv"
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    t0 = time.time()
    try:
        while _rows(csv) < 2 and proc.poll() is None and time.time() - t0 < 240:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert _rows(csv) == 2, "the run was not killed during generation 3"
    before = csv.read_text().splitlines()
    p = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    return tmp / "runs" / "exp", before, p


def test_killed_evolution_continues_with_only_the_missing_generation(evolved):
    d, before, p = evolved
    assert "continuing" in p.stderr and "2/3 generations done" in p.stderr
    assert "generation 3/3" in p.stderr and "generation 1/3" not in p.stderr and "generation 2/3" not in p.stderr
    assert not (d.parent / "exp2").exists()
    lines = (d / "evolve.csv").read_text().splitlines()
    assert len(lines) == 4 and lines[:3] == before  # the first two generations kept byte for byte


def test_csv_yaml_and_plot(evolved):
    d = evolved[0]
    keys, x = read_evolve_csv(d / "evolve.csv")
    assert keys == list(BASE)  # --noautoanchor: no 'anchors' column, as YOLOv5
    assert x.shape == (3, 7 + len(BASE))
    assert np.isfinite(x).all() and (x[:, 4:7] > 0).all()  # real validation losses of each generation
    np.testing.assert_allclose(x[0, 7:], [round(v, 5) for v in BASE.values()], rtol=1e-4)  # generation 0: base
    for row in x[1:]:
        assert (row[7:] != x[0, 7:]).any() or (row[7:] != x[1, 7:]).any()
        for k, v in zip(keys, row[7:]):
            _, lo, hi = META[k]
            assert lo <= v <= hi, (k, v)
    assert not np.array_equal(x[1, 7:], x[0, 7:])  # generation 1 is a mutation
    text = (d / "hyp_evolve.yaml").read_text()
    i = int(np.argmax(fitness(x)))
    assert text.startswith(f"# YOLOv5 Hyperparameter Evolution Results\n# Best generation: {i}\n"
                           "# Last generation: 2\n# " + ", ".join(f"{k:>20s}" for k in RESULT_KEYS) + "\n")
    np.testing.assert_allclose(list(yaml.safe_load(text).values()), x[i, 7:], rtol=1e-6)
    im = cv2.imread(str(d / "evolve.png"))
    assert im is not None and im.shape[0] > 400 and im.shape[1] > 400
    assert (d / "train" / "weights" / "last.pt").is_file()  # the last generation's training folder


def test_evolution_under_torchrun_trains_with_ddp(tmp_path):
    data = demo_subset_yaml(tmp_path, 8, 4)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           *_cmd(data, tmp_path / "runs", "--evolve", "2", "--device", "cpu")[1:]]
    p = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    hashes = re.findall(r"DDP: final weights (\w+) on 2 ranks", p.stderr)
    assert hashes == ["identical", "identical"], p.stderr[-3000:]  # each generation trained by both ranks
    keys, x = read_evolve_csv(tmp_path / "runs" / "exp" / "evolve.csv")
    assert x.shape == (2, 7 + len(BASE)) and not np.array_equal(x[0, 7:], x[1, 7:])
