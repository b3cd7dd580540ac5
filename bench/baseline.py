"""The official YOLOv5 figures every benchmark divides by: perf.md's, or this machine's own measurement.

perf.md (../shared/reference/yolov5/perf.md) was measured on one machine; `bench/official_baseline.py` reruns
the same protocols with the official code here and writes runs/bench/official_baseline.json. When that file
exists the benchmarks use it (same-machine ratios) and say so; `--baseline perf.md` forces the published figures.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from tests.shared_data import SHARED  # noqa: E402  (finds ../shared from worktrees too)

__all__ = ["SHARED", "DEFAULT_BASELINE", "PERF_MD", "add_baseline_arg", "load_baseline", "matmul_gflops",
           "run_timed", "script_bench_args", "time_forward"]

DEFAULT_BASELINE = REPO / "runs" / "bench" / "official_baseline.json"
PERF_MD = {  # ../shared/reference/yolov5/perf.md, YOLOv5 v7.0 on a 2-vCPU Intel Xeon (AVX-512, AMX)
    "matmul_gflops": 308.6,
    "forward_ms": {"yolov5n_b1": 68.3, "yolov5n_b8": 487.0, "yolov5s_b1": 116.3, "yolov5s_b8": 1239.0},
    "dataloader_img_s": 100.0,  # section e, passes 2-3
    "train_img_s": 15.3,  # section a, from scratch
    "val_s": 19.9,  # section b, whole process, batch 32
    "detect_s": 13.8,  # section c, whole process
    "machine": "perf.md: 2 vCPU Intel Xeon (AVX-512, AMX)",
}


def add_baseline_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", default=str(DEFAULT_BASELINE),
                        help="official figures: a JSON from bench/official_baseline.py (used when it exists), "
                             "or 'perf.md' for the published ones")


def script_bench_args(doc: str, batch_size: int) -> argparse.Namespace:
    """The flags of the end-to-end script benchmarks: --weights (default: shared's yolov5n.pt), --batch-size,
    --shared, --baseline."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--weights", default=None, help="any weights or export the script takes")
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--shared", default=str(SHARED))
    add_baseline_arg(p)
    return p.parse_args()


def run_timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds of a whole process run in the repository root, and its result (output captured)."""
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True)
    return time.perf_counter() - t, out


def load_baseline(path: str | Path = DEFAULT_BASELINE) -> tuple[dict, str]:
    """(figures, where they come from): the measured JSON over perf.md's figures, key by key."""
    figures = {**PERF_MD, "forward_ms": dict(PERF_MD["forward_ms"])}
    path = Path(path)
    if str(path) == "perf.md" or not path.is_file():
        return figures, "perf.md (another machine: run bench/official_baseline.py for same-machine ratios)"
    measured = json.loads(path.read_text())
    figures.update({k: v for k, v in measured.items() if k != "forward_ms"})
    figures["forward_ms"].update(measured.get("forward_ms", {}))
    missing = sorted(set(PERF_MD) - set(measured))
    note = f"; from perf.md: {', '.join(missing)}" if missing else ""
    return figures, f"{path} (official code measured on this machine{note})"


def time_forward(fn, x, warmup: int, reps: int) -> float:
    """Median milliseconds of fn(x) under inference_mode (perf.md d: b1 5 warmups / 20 runs, b8 2 / 8)."""
    import torch

    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def matmul_gflops(n: int = 2048, reps: int = 20, dtype=None) -> float:
    """Median n^3 matmul rate of this CPU (float32 unless `dtype`), the sanity anchor perf.md also records.
    bfloat16 gives the limit that a bf16 backend's forward compares with (AMX runs it several times faster)."""
    import torch

    a, b = torch.rand(n, n, dtype=dtype), torch.rand(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times) / 1e9
