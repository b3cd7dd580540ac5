"""val.py end to end on coco128 at 640 (yolov5n): wall time, images/s and the ratio to YOLOv5 v7.0.

    python bench/val_speed.py [--batch-size 32] [--shared PATH]

Baseline: the official code measured on this machine by bench/official_baseline.py, else perf.md's figure:
the official val.py takes 19.9 s for the whole process at batch 32.
The script times the whole `python val.py ...` process (imports, loading, data, inference, metrics), then
prints the figures it obtained (batch 16 gives the second set of official figures: 0.5826 0.5080 0.5684 0.3657).
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from baseline import load_baseline, run_timed, script_bench_args  # noqa: E402


def main() -> None:
    args = script_bench_args(__doc__, batch_size=32)
    official, source = load_baseline(args.baseline)
    base = official["val_s"]
    shared = Path(args.shared)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "val.py", "--weights", args.weights or str(shared / "weights/yolov5n.pt"), "--data",
               str(shared / "datasets/coco128/coco128.yaml"), "--img", "640", "--batch-size", str(args.batch_size),
               "--device", "cpu", "--project", tmp]
        wall, _ = run_timed(cmd)
        m = json.loads((Path(tmp) / "exp" / "metrics.json").read_text())
    print(f"val.py batch {args.batch_size}: {wall:.1f} s, {128 / wall:.1f} images/s end to end; "
          f"official {base} s ({source}) -> speed-up x{base / wall:.2f}")
    print("P %.4f R %.4f mAP50 %.4f mAP50-95 %.4f" % (m["P"], m["R"], m["mAP50"], m["mAP50_95"]))
    print("per image ms: " + ", ".join(f"{k} {v:.1f}" for k, v in m["speed_ms_per_image"].items()))


if __name__ == "__main__":
    main()
