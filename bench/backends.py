"""Every inference backend on this machine: forward latency at 640 (batch 1 and 8), detect.py end to end on
coco128's 128 images, val.py mAP50-95 on coco128, and the ratio to the official YOLOv5 PyTorch figures.

    python bench/backends.py [--models yolov5n yolov5s yolov8n] [--backends eager compiled torchscript onnx
                             openvino openvino-bf16 openvino-int8] [--scripts-for yolov5n]
                             [--out runs/bench/backends.json]

Backends: PyTorch eager (fused, channels_last, CPU micro-batches: load_backend's defaults), PyTorch compiled
(`--compile`: inductor, frozen), TorchScript, ONNX Runtime (CPU provider), OpenVINO fp32, the same IR in bf16
(`--bf16`, CPUs with AVX-512 BF16 or AMX) and OpenVINO INT8 (NNCF, calibrated on coco128). Exports are written at
640 with a dynamic shape (TorchScript: one static export per batch size, batch 1 for the scripts, so its
detect.py/val.py inputs are square 640, not YOLOv5's rect shapes). yolov5n uses the official pretrained weights of
../shared; yolov5s and yolov8n have no pretrained weights there, so they
are timed with seeded random weights (no mAP, and detect.py finds nothing: `--scripts-for` runs the scripts for
yolov5n only by default). The compiled backend's scripts are not run: detect.py's and val.py's varying input shapes
each compile again (models/backend_compile.py). Official figures: bench/official_baseline.py's JSON when it exists
(same machine), else perf.md's. Timings on a shared machine move with its load: the load average is printed with
the table.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from baseline import SHARED, add_baseline_arg, load_baseline, matmul_gflops, run_timed, time_forward  # noqa: E402

BACKENDS = ("eager", "compiled", "torchscript", "onnx", "openvino", "openvino-bf16", "openvino-int8")
MODELS = ("yolov5n", "yolov5s", "yolov8n")
IMGSZ = 640


def model_weights(name: str, folder: Path) -> tuple[Path, bool]:
    """(weights path, pretrained): ../shared's official yolov5n, else a seeded random-init checkpoint of the YAML."""
    if name == "yolov5n":
        return SHARED / "weights" / "yolov5n.pt", True
    from models.checkpoint import save_checkpoint
    from models.yolo import Model

    torch.manual_seed(0)
    return save_checkpoint(folder / f"{name}.pt", Model(f"{name}.yaml").eval()), False


def export_all(weights: Path, folder: Path, backends: list[str], batches: list[int]) -> dict[str, dict[int, Path]]:
    """{backend: {batch: file}} of every export the backends need (batch None: any batch)."""
    from utils.export.exporter import run as export_run

    files: dict[str, dict] = {"eager": {0: weights}, "compiled": {0: weights}}
    wanted = set(backends) | ({"openvino"} if "openvino-bf16" in backends else set())  # bf16 runs the fp32 IR
    fmts = [f for f in ("onnx", "openvino") if f in wanted]
    if fmts:
        out = export_run(weights, include=fmts, imgsz=(IMGSZ,), dynamic=True, project=folder, name="dyn",
                         exist_ok=True)
        files |= {f: {0: out[f]} for f in fmts}
        if "openvino" in out:
            files["openvino-bf16"] = {0: out["openvino"]}
    if "openvino-int8" in backends:
        data = SHARED / "datasets" / "coco128" / "coco128.yaml"
        out = export_run(weights, include=("openvino",), imgsz=(IMGSZ,), dynamic=True, int8=True, data=str(data),
                         project=folder, name="int8", exist_ok=True)
        files["openvino-int8"] = {0: out["openvino"]}
    if "torchscript" in backends:
        files["torchscript"] = {bs: export_run(weights, include=("torchscript",), imgsz=(IMGSZ,), batch_size=bs,
                                               project=folder, name=f"ts{bs}", exist_ok=True)["torchscript"]
                                for bs in sorted(set(batches) | {1})}
    return {k: v for k, v in files.items() if k in backends}


def latency(backend: str, files: dict[int, Path], bs: int) -> float:
    """Median forward milliseconds at (bs, 3, 640, 640) (perf.md d: batch 1 5 warmups / 20 runs, batch 8 2 / 8).

    OpenVINO warms up until the shape has its static compilation (models/openvino_shapes.py): the figure is what a
    fixed-shape stream gets after its first STATIC_AFTER calls."""
    from models.backends import load_backend
    from models.openvino_shapes import STATIC_AFTER

    path = files.get(bs, files.get(0))
    b = load_backend(path, "cpu", compile=backend == "compiled", bf16=backend.endswith("bf16"))
    x = torch.rand(bs, 3, IMGSZ, IMGSZ)
    warmup, reps = (5, 20) if bs == 1 else (2, 8)
    if backend.startswith("openvino"):
        warmup = max(warmup, STATIC_AFTER)
    return time_forward(b, x, warmup + 2 * (backend == "compiled"), reps)


def detect_e2e(backend: str, path: Path, tmp: Path) -> float:
    """Best wall seconds of 2 detect.py processes on the 128 coco128 images at 640 (annotated images saved), as
    bench/official_baseline.py times the official one."""
    cmd = [sys.executable, "detect.py", "--weights", str(path), "--source",
           str(SHARED / "datasets/coco128/images/train2017"), "--img", str(IMGSZ), "--device", "cpu",
           "--project", str(tmp / "detect"), "--name", backend, "--exist-ok"] + ["--bf16"] * backend.endswith("bf16")
    return min(run_timed(cmd)[0] for _ in range(2))


def val_map(backend: str, path: Path, tmp: Path) -> tuple[float, float]:
    """(mAP50-95, wall seconds) of val.py on coco128 at 640, batch 32."""
    save = tmp / "val" / backend
    cmd = [sys.executable, "val.py", "--weights", str(path), "--data",
           str(SHARED / "datasets/coco128/coco128.yaml"), "--img", str(IMGSZ), "--batch", "32", "--device", "cpu",
           "--project", str(save.parent), "--name", save.name, "--exist-ok"] + ["--bf16"] * backend.endswith("bf16")
    wall = run_timed(cmd)[0]
    return json.loads((save / "metrics.json").read_text())["mAP50_95"], wall


def measure(name: str, backends: list[str], batches: list[int], scripts: bool, official: dict, tmp: Path) -> list:
    """One row per backend of model `name`."""
    weights, pretrained = model_weights(name, tmp)
    files = export_all(weights, tmp / name, backends, batches)
    rows = []
    for backend in backends:
        row = {"model": name, "backend": backend}
        for bs in batches:
            row[f"b{bs}_ms"] = latency(backend, files[backend], bs)
            ref = official["forward_ms"].get(f"{name}_b{bs}")
            row[f"b{bs}_x"] = ref / row[f"b{bs}_ms"] if ref else None
        if scripts and backend != "compiled":  # every new input shape compiles again: see models/backend_compile.py
            path = files[backend].get(1, files[backend].get(0))
            row["detect_s"] = detect_e2e(backend, path, tmp)
            row["detect_x"] = official["detect_s"] / row["detect_s"]
            if pretrained:
                row["mAP50_95"], row["val_s"] = val_map(backend, path, tmp)
        rows.append(row)
        print(_line(row, batches), flush=True)
    return rows


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _line(row: dict, batches: list[int]) -> str:
    cells = [row["model"], row["backend"]]
    for bs in batches:
        cells += [f"{_fmt(row.get(f'b{bs}_ms'), '.1f')} ({_fmt(row.get(f'b{bs}_x'), '.2f')}x)"]
    cells += [f"{_fmt(row.get('detect_s'), '.1f')} s ({_fmt(row.get('detect_x'), '.2f')}x)",
              _fmt(row.get("mAP50_95"), ".4f")]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    ap.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--scripts-for", nargs="*", default=["yolov5n"], help="models to run detect.py/val.py for")
    ap.add_argument("--compile-for", nargs="*", default=["yolov5n"],
                    help="models to time the compiled backend for (each compile takes minutes on a small CPU)")
    ap.add_argument("--out", default=str(REPO / "runs" / "bench" / "backends.json"))
    add_baseline_arg(ap)
    opt = ap.parse_args()
    official, source = load_baseline(opt.baseline)
    t0 = time.time()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, matmul {matmul_gflops():.0f} GFLOP/s "
          f"(bfloat16 {matmul_gflops(dtype=torch.bfloat16):.0f}, the anchor of the bf16 rows), "
          f"load average {os.getloadavg()[0]:.1f}; official figures: {source}")
    head = ["model", "backend", *[f"forward b{bs} ms (x official)" for bs in opt.batch],
            "detect.py 128 images (x official)", "val mAP50-95"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in opt.models:
            backends = [b for b in opt.backends if b != "compiled" or name in opt.compile_for]
            rows += measure(name, backends, opt.batch, name in opt.scripts_for, official, Path(d))
    load = os.getloadavg()
    print(f"{time.time() - t0:.0f} s; load average now {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min)")
    out = Path(opt.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"official": source, "rows": rows, "load_avg": load,
                               "median_b1_ms": statistics.median(r["b1_ms"] for r in rows) if rows else None},
                              indent=1))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
