"""OpenVINO: a dynamic IR's own compilation against the static one a recurring shape gets (models/openvino_shapes.py).

    python bench/openvino_static.py IR [IR ...] [--shapes 1x640x640 1x480x640 8x640x640] [--bf16]

Both sessions run in this process, in alternating rounds, so machine noise hits both alike; prints the median
milliseconds of each and their ratio. Export an IR with `python export.py --include openvino --dynamic`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline import time_forward  # noqa: E402
from models.backend_openvino import open_openvino  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("irs", nargs="+", type=Path)
    ap.add_argument("--shapes", nargs="+", default=["1x640x640", "1x480x640", "8x640x640"])
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--rounds", type=int, default=4)
    opt = ap.parse_args()
    for ir in opt.irs:
        dynamic = open_openvino(ir, bf16=opt.bf16, static_after=10**9)
        static = open_openvino(ir, bf16=opt.bf16, static_after=1)
        for spec in opt.shapes:
            b, h, w = (int(v) for v in spec.split("x"))
            x = np.random.default_rng(0).random((b, 3, h, w), np.float32)
            reps = 10 if b == 1 else 2
            for s in (dynamic, static):
                s.run(x)  # first calls: the static session compiles here
            times = {"dynamic": [], "static": []}
            for _ in range(opt.rounds):
                times["dynamic"].append(time_forward(dynamic.run, x, 0, reps))
                times["static"].append(time_forward(static.run, x, 0, reps))
            d, s = (statistics.median(v) for v in times.values())
            print(f"{ir.name} {'bf16' if opt.bf16 else 'f32 hint'} {spec}: dynamic {d:.1f} ms, static {s:.1f} ms "
                  f"-> {d / s:.2f}x", flush=True)


if __name__ == "__main__":
    main()
