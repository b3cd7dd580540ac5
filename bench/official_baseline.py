"""Measure the official YOLOv5 v7.0 code on THIS machine, so the other benchmarks compare like with like.

The figures in ../shared/reference/yolov5/perf.md were taken on one particular machine; a different CPU (an AMD
EPYC instead of the Intel Xeon with AMX used there, say) moves them by tens of percent in either direction. This
script reruns the perf.md protocols with the official code and writes runs/bench/official_baseline.json, which
bench/model_speed.py, dataloader.py, train_speed.py, val_speed.py and detect_speed.py then use (--baseline).

It needs the official code, which the project itself never imports: install the PyPI packaging of YOLOv5 v7.0
into a separate environment that sees this machine's torch, e.g.

    python -m venv --system-site-packages /tmp/y5env
    /tmp/y5env/bin/pip install yolov5==7.0.14 "setuptools<75" "pillow<10" "huggingface-hub<0.25"
    /tmp/y5env/bin/python bench/official_baseline.py [--sections forward dataloader train val detect]

The official weights file is a pickle of whole modules: it is only ever loaded by the official code, here.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from baseline import DEFAULT_BASELINE, SHARED, matmul_gflops, time_forward  # noqa: E402

SECTIONS = ("forward", "dataloader", "train", "val", "detect")
# v7.0 calls np.trapz, which numpy 2.4 removed: alias it, then run the official module as __main__
COMPAT_LAUNCHER = ("import runpy, sys, numpy as np; np.trapz = getattr(np, 'trapz', None) or np.trapezoid; "
                   "sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)")


def official_env(config_dir: Path) -> dict[str, str]:
    """Environment for the official code: no auto-install, whole-module pickles allowed, a local font."""
    import matplotlib

    config_dir.mkdir(parents=True, exist_ok=True)
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        shutil.copy(font, config_dir / name)
    return {"YOLOv5_AUTOINSTALL": "false", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
            "YOLOV5_CONFIG_DIR": str(config_dir)}


def absolute_dataset_path(data_yaml: Path) -> None:
    """The official code resolves a relative `path:` against its own install folder, not the YAML's."""
    import yaml

    data = yaml.safe_load(data_yaml.read_text())
    data["path"] = str((data_yaml.parent / data.get("path", ".")).resolve())
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))


def forward_ms() -> dict[str, float]:
    """perf.md d: Model(cfg, nc=80).fuse().eval(), torch.rand input, b1 5 warmups / 20 runs, b8 2 / 8, medians."""
    import torch
    import yolov5
    from yolov5.models.yolo import Model

    out = {}
    for name in ("yolov5n", "yolov5s"):
        torch.manual_seed(0)
        model = Model(str(Path(yolov5.__file__).parent / "models" / f"{name}.yaml"), nc=80).fuse().eval()
        for bs, warmup, reps in ((1, 5, 20), (8, 2, 8)):
            ms = time_forward(model, torch.rand(bs, 3, 640, 640), warmup, reps)
            out[f"{name}_b{bs}"] = round(ms, 1)
            print(f"  forward {name} batch {bs}: {out[f'{name}_b{bs}']} ms", flush=True)
    return out


def dataloader_img_s(images: Path) -> float:
    """perf.md e: the official mosaic loader, 640, batch 16, 2 workers; mean of passes 2-3."""
    import yaml
    from yolov5.utils.dataloaders import create_dataloader

    hyp = yaml.safe_load((REPO / "data" / "hyps" / "hyp.scratch-low.yaml").read_text())
    loader, _ = create_dataloader(str(images), 640, 16, 32, hyp=hyp, augment=True, cache=None, rect=False,
                                  workers=2, shuffle=True)
    rates = []
    for _ in range(3):
        t0, n = time.perf_counter(), 0
        for imgs, *_ in loader:
            n += imgs.shape[0]
        rates.append(n / (time.perf_counter() - t0))
    print("  dataloader passes: " + ", ".join(f"{r:.1f}" for r in rates) + " img/s", flush=True)
    return round(statistics.mean(rates[1:]), 1)


def train_img_s(data: Path, project: Path) -> float:
    """perf.md a: train.py main(), 1 epoch yolov5n 320 batch 16 from scratch; loop = epoch start to epoch end."""
    sys.modules.setdefault("yolov5.utils.roboflow", types.SimpleNamespace(RoboflowConnector=None))  # upload hook, unused
    from yolov5 import train as official_train
    from yolov5.utils.callbacks import Callbacks

    marks: dict[str, float] = {}
    callbacks = Callbacks()
    callbacks.register_action("on_train_epoch_start", callback=lambda: marks.setdefault("start", time.perf_counter()))
    callbacks.register_action("on_train_epoch_end", callback=lambda epoch: marks.setdefault("end", time.perf_counter()))
    argv = ["--img", "320", "--batch", "16", "--epochs", "1", "--data", str(data), "--cfg", "yolov5n.yaml",
            "--weights", "", "--workers", "2", "--device", "cpu", "--project", str(project), "--name", "scratch",
            "--exist-ok"]
    sys.argv = ["train.py", *argv]
    official_train.main(official_train.parse_opt(), callbacks)
    rate = 128 / (marks["end"] - marks["start"])
    print(f"  train loop: {marks['end'] - marks['start']:.2f} s -> {rate:.1f} img/s", flush=True)
    return round(rate, 1)


def wall_s(module: str, args: list[str], env: dict[str, str], cwd: Path, repeats: int = 2) -> float:
    """Best whole-process wall time of `python -m yolov5.<module> args` over `repeats` runs (perf.md b and c).

    Run outside this repository: the official pickle names top-level `models.yolo`, which ours would shadow."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", COMPAT_LAUNCHER, f"yolov5.{module}", *args], capture_output=True,
                              text=True, env={**os.environ, **env}, cwd=cwd)
        if done.returncode:
            sys.exit(f"official {module}.py failed:\n{done.stderr[-3000:]}")
        times.append(time.perf_counter() - t)
    dt = min(times)
    said = [ln.strip() for ln in (done.stdout + done.stderr).splitlines() if ln.strip().startswith(("all ", "Speed:"))]
    print(f"  {module}.py: " + ", ".join(f"{x:.1f}" for x in times) + " s  " + " | ".join(said), flush=True)
    return round(dt, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--shared", default=str(SHARED))
    p.add_argument("--out", default=str(DEFAULT_BASELINE))
    a = p.parse_args()
    if importlib.util.find_spec("yolov5") is None:
        sys.exit("the official code is not installed here: see `python bench/official_baseline.py --help`")
    shared = Path(a.shared)
    weights = shared / "weights" / "yolov5n.pt"
    out_path = Path(a.out)
    result = json.loads(out_path.read_text()) if out_path.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        coco = Path(tmp) / "coco128"  # a copy: the official loader writes its label cache beside the labels
        shutil.copytree(shared / "datasets" / "coco128", coco)
        absolute_dataset_path(coco / "coco128.yaml")
        env = official_env(Path(tmp) / "config")
        os.environ.update(env)
        import numpy as np

        np.trapz = getattr(np, "trapz", None) or np.trapezoid  # see COMPAT_LAUNCHER
        result["matmul_gflops"] = round(matmul_gflops(), 1)
        print(f"  matmul: {result['matmul_gflops']} GFLOP/s", flush=True)
        if "forward" in a.sections:
            result["forward_ms"] = forward_ms()
        if "dataloader" in a.sections:
            result["dataloader_img_s"] = dataloader_img_s(coco / "images" / "train2017")
        if "val" in a.sections:
            result["val_s"] = wall_s("val", ["--weights", str(weights), "--data", str(coco / "coco128.yaml"),
                                             "--img", "640", "--batch", "32", "--conf", "0.001", "--iou", "0.6",
                                             "--device", "cpu", "--project", str(Path(tmp) / "val")], env, Path(tmp))
        if "detect" in a.sections:
            result["detect_s"] = wall_s("detect", ["--weights", str(weights), "--source",
                                                   str(coco / "images" / "train2017"), "--img", "640",
                                                   "--device", "cpu", "--project", str(Path(tmp) / "detect")], env,
                                      Path(tmp))
        if "train" in a.sections:  # last: it leaves the official loader's workers behind in this process
            result["train_img_s"] = train_img_s(coco / "coco128.yaml", Path(tmp) / "train")
    import torch

    result["machine"] = f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
