"""detect.py end to end on coco128's 128 images at 640 (yolov5n, saving annotated images): ratio to YOLOv5.

    python bench/detect_speed.py [--weights yolov5n.onnx] [--batch-size 8] [--shared PATH]

Best of 2 runs, as bench/official_baseline.py times the official one.

Baseline: the official code measured on this machine by bench/official_baseline.py, else perf.md's figure:
the official detect.py takes 13.8 s (9.3 images/s) for the whole process.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from baseline import load_baseline, run_timed, script_bench_args  # noqa: E402


def main() -> None:
    args = script_bench_args(__doc__, batch_size=8)
    official, source = load_baseline(args.baseline)
    base = official["detect_s"]
    shared = Path(args.shared)
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or str(shared / "weights/yolov5n.pt")
        cmd = [sys.executable, "detect.py", "--weights", weights, "--source",
               str(shared / "datasets/coco128/images/train2017"), "--img", "640", "--device", "cpu",
               "--batch-size", str(args.batch_size), "--project", tmp]
        wall, out = min((run_timed(cmd + ["--name", f"exp{i}"]) for i in range(2)), key=lambda r: r[0])
        saved = len(list((Path(tmp) / "exp0").glob("*.jpg")))
    speed = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Speed:")]
    print(f"detect.py batch {args.batch_size}: {wall:.1f} s, {128 / wall:.1f} images/s end to end "
          f"({saved} annotated images saved); official {base} s ({source}) -> speed-up x{base / wall:.2f}")
    print(speed[-1] if speed else "")


if __name__ == "__main__":
    main()
