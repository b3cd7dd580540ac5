"""Forward latency of fused yolov5n / yolov5s at 640 on this machine, against the official YOLOv5 code.

Every choice is measured separately (memory format, micro-batching, TorchScript freezing with oneDNN fusion,
torch.compile),
next to the plain matmul rate of the CPU, so the achieved GFLOP/s show how close each one gets to the machine.
Official figures: the official code measured on this machine by bench/official_baseline.py when its JSON exists,
else perf.md's (yolov5n 68.3 ms, yolov5s 116.3 ms at batch 1; 487 / 1239 ms at batch 8; matmul 309 GFLOP/s).

    python bench/model_speed.py [--models yolov5n yolov5s] [--batch 1 8] [--compile]
    /tmp/y5env/bin/python bench/model_speed.py --interleave --batch 1   # official vs ours, alternating
    python bench/model_speed.py --ultralytics /work/venvs/ultralytics/bin/python --models yolov8n yolo11n

--ultralytics times the anchor-free family against the ultralytics 8.4 code: the original runs in its own
environment (bench/ultralytics_worker.py, a subprocess) and the two processes take turns, round after round,
so machine noise hits both alike; only one of them computes at a time.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline import add_baseline_arg, load_baseline, matmul_gflops, time_forward  # noqa: E402
from models.backends import CPU_MICROBATCH  # noqa: E402
from models.yolo import Model  # noqa: E402
from utils.inference import prepare_for_inference  # noqa: E402
from utils.torch_utils import gflops  # noqa: E402

def variants(model: Model, x: torch.Tensor, use_compile: bool):
    """(name, callable) for each inference setting to compare."""
    plain = model
    yield "eager, fused, NCHW", plain, x
    opt = prepare_for_inference(copy.deepcopy(model), x.shape, mode="eager-cl")
    yield "eager, fused, channels_last", opt, x.contiguous(memory_format=torch.channels_last)
    if x.shape[0] > CPU_MICROBATCH:
        xcl = x.contiguous(memory_format=torch.channels_last)
        yield (f"channels_last, micro-batches of {CPU_MICROBATCH}",
               lambda t: torch.cat([opt(p)[0] for p in t.split(CPU_MICROBATCH)]), xcl)
    jit = prepare_for_inference(copy.deepcopy(model), x.shape, mode="jit")
    yield "TorchScript frozen (oneDNN), NCHW", jit, x
    if use_compile:
        compiled = torch.compile(model)
        yield "torch.compile (inductor)", compiled, x


def interleaved(names: list[str], bs: int, imgsz: int, rounds: int = 6, runs: int = 5) -> None:
    """Official and our fastest setting timed in alternating rounds in one process, so machine noise hits both.

    Needs the official code importable (the environment of bench/official_baseline.py)."""
    import yolov5
    from yolov5.models.yolo import Model as OfficialModel

    for name in names:
        torch.manual_seed(0)
        official = OfficialModel(str(Path(yolov5.__file__).parent / "models" / f"{name}.yaml"), nc=80).fuse().eval()
        x = torch.rand(bs, 3, imgsz, imgsz)
        ours = prepare_for_inference(Model(f"{name}.yaml").eval().fuse(), x.shape, mode="eager-cl")
        pairs = {"official (NCHW)": (official, x), "ours (channels_last)": (ours, x.contiguous(
            memory_format=torch.channels_last))}
        times: dict[str, list[float]] = {k: [] for k in pairs}
        for fn, xi in pairs.values():
            time_forward(fn, xi, 5, 1)
        for _ in range(rounds):
            for k, (fn, xi) in pairs.items():
                times[k].append(time_forward(fn, xi, 0, runs))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{name} batch {bs}, {rounds} alternating rounds of {runs}: "
              + ", ".join(f"{k} {v:.1f} ms" for k, v in med.items())
              + f" -> {med['official (NCHW)'] / med['ours (channels_last)']:.2f}x")


class UltralyticsWorker:
    """bench/ultralytics_worker.py running in the original's environment: times its fused model on request."""

    def __init__(self, python: str, name: str, bs: int, imgsz: int) -> None:
        script = Path(__file__).resolve().parent / "ultralytics_worker.py"
        self.proc = subprocess.Popen([python, str(script), name, str(bs), str(imgsz), str(torch.get_num_threads())],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench/ultralytics_worker.py ended (exit {self.proc.wait()}): is ultralytics installed "
                               "in that environment? see its docstring")
        return json.loads(line)

    def time(self, runs: int, channels_last: bool = False) -> list[float]:
        self.proc.stdin.write(json.dumps({"runs": runs, "channels_last": channels_last}) + "\n")
        self.proc.stdin.flush()
        return self._read()["ms"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def our_times(fn, x: torch.Tensor, runs: int) -> list[float]:
    """Milliseconds of each of `runs` forwards under inference_mode."""
    times = []
    with torch.inference_mode():
        for _ in range(runs):
            t = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - t) * 1e3)
    return times


def against_ultralytics(names: list[str], bs: int, imgsz: int, python: str, rounds: int = 8) -> list[float]:
    """Ours (fused, channels_last) and the original (fused, NCHW as it runs), alternating rounds: the ratios.

    The original is also timed moved to channels_last (which it does not do itself), to show how much of the
    ratio that choice makes."""
    runs = 5 if bs == 1 else 2
    ratios = []
    for name in names:
        worker = UltralyticsWorker(python, name, bs, imgsz)
        torch.manual_seed(0)
        x = torch.rand(bs, 3, imgsz, imgsz)
        model = Model(f"{name}.yaml").eval().fuse()
        n_ours = sum(p.numel() for p in model.parameters())
        ours = prepare_for_inference(model, x.shape, mode="eager-cl")
        xcl = x.contiguous(memory_format=torch.channels_last)
        our_times(ours, xcl, 3)
        micro = bs > CPU_MICROBATCH  # detect.py / val.py on CPU run such a batch in micro-batches (models/backends.py)
        split = lambda t: torch.cat([ours(p)[0] for p in t.split(CPU_MICROBATCH)])  # noqa: E731
        theirs, theirs_cl, mine, mine_micro = [], [], [], []
        try:
            for _ in range(rounds):
                theirs += worker.time(runs)
                mine += our_times(ours, xcl, runs)
                theirs_cl += worker.time(runs, channels_last=True)
                if micro:
                    mine_micro += our_times(split, xcl, runs)
        finally:
            worker.close()
        a, b, c = statistics.median(theirs), statistics.median(mine), statistics.median(theirs_cl)
        ratios.append(a / b)
        extra = ""
        if micro:
            d = statistics.median(mine_micro)
            extra = f"; ours in micro-batches of {CPU_MICROBATCH} (as detect/val run it) {d:.1f} ms -> {a / d:.2f}x"
        print(f"{name} batch {bs} at {imgsz}, {rounds} alternating rounds of {runs}: ultralytics "
              f"{worker.info['version']} {a:.1f} ms ({worker.info['params']:,} fused params), ours {b:.1f} ms "
              f"({n_ours:,}) -> {a / b:.2f}x  [ultralytics moved to channels_last: {c:.1f} ms, ours {c / b:.2f}x"
              f"{extra}]", flush=True)
    return ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["yolov5n", "yolov5s"])
    ap.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile)")
    ap.add_argument("--interleave", action="store_true",
                    help="time the official model and ours alternately in this process (needs the official code)")
    ap.add_argument("--ultralytics", metavar="PYTHON",
                    help="time --models against ultralytics 8.4, run by this python (its own environment)")
    add_baseline_arg(ap)
    opt = ap.parse_args()
    if opt.ultralytics:
        for bs in opt.batch:
            against_ultralytics(opt.models, bs, opt.imgsz, opt.ultralytics)
        return
    if opt.interleave:
        for bs in opt.batch:
            interleaved(opt.models, bs, opt.imgsz)
        return
    official, source = load_baseline(opt.baseline)
    torch.manual_seed(0)
    mm, mm_bf16 = matmul_gflops(), matmul_gflops(dtype=torch.bfloat16)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; float32 matmul 2048^3: {mm:.0f} GFLOP/s, "
          f"bfloat16 {mm_bf16:.0f} GFLOP/s (float32 on the baseline machine: {official['matmul_gflops']:.0f}); "
          f"official figures from {source}")
    print(f"{'model':8} {'batch':>5} {'setting':36} {'ms':>8} {'img/s':>7} {'GFLOP/s':>8} {'vs official':>11}")
    for name in opt.models:
        model = Model(f"{name}.yaml").eval().fuse()
        gf = gflops(model, opt.imgsz)
        for bs in opt.batch:
            x = torch.rand(bs, 3, opt.imgsz, opt.imgsz)
            warmup, reps = (5, 20) if bs == 1 else (2, 8)
            best = float("inf")
            for label, fn, xi in variants(model, x, opt.compile):
                ms = time_forward(fn, xi, warmup, reps)
                best = min(best, ms)
                ref = official["forward_ms"].get(f"{name}_b{bs}")
                ratio = f"{ref / ms:.2f}x" if ref else "-"
                print(f"{name:8} {bs:>5} {label:36} {ms:8.1f} {bs / ms * 1e3:7.1f} {gf * bs / ms * 1e3:8.0f} {ratio:>11}")
            limit = gf * bs / mm * 1e3  # the forward's FLOPs at this CPU's matmul rate
            print(f"{name:8} {bs:>5} {'matmul limit (GFLOPs / matmul rate)':36} {limit:8.1f}   -> fastest setting "
                  f"{best:.1f} ms = {best / limit:.2f}x the limit (other backends: bench/backends.py; a bf16 "
                  f"backend's limit: {gf * bs / mm_bf16 * 1e3:.1f} ms at the bfloat16 matmul rate)")


if __name__ == "__main__":
    main()
