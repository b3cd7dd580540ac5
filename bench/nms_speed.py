"""NMS speed with val.py's flags: batch-vectorised `non_max_suppression` vs a naive per-image loop; with detect.py's
flags also the NumPy NMS that detect.py runs CPU exports with (utils/nms_numpy.py), image by image as detect.py does.

Input: the (4, 25200, 85) official yolov5n prediction of nms_cases.pt, tiled to a val-sized batch.
Prints ms per image for both (best of the repeats, as the machine is shared), their ratio, and the
ratio to the official val.py NMS time per image (perf.md).
Usage: python bench/nms_speed.py [--shared ../shared] [--batch 32] [--repeats 20]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from utils.boxes import xywh2xyxy  # noqa: E402
from utils.nms import MAX_WH, non_max_suppression  # noqa: E402
from utils.nms_numpy import non_max_suppression_numpy  # noqa: E402

OFFICIAL_VAL_NMS_MS = 6.7  # perf.md b: official val.py, yolov5n, coco128, 640, batch 32, per image
VAL_FLAGS = {"conf_thres": 0.001, "iou_thres": 0.6, "multi_label": True, "max_det": 300}
DETECT_FLAGS = {"conf_thres": 0.25, "iou_thres": 0.45, "max_det": 1000}  # one label per box


def naive_nms(pred: torch.Tensor, conf_thres: float, iou_thres: float, multi_label: bool,
              max_det: int) -> list[torch.Tensor]:
    """The straightforward formulation: every step done image by image."""
    out = []
    for x in pred:
        x = x[x[:, 4] > conf_thres]
        scores = x[:, 5:] * x[:, 4:5]
        box = xywh2xyxy(x[:, :4])
        if multi_label:
            i, j = (scores > conf_thres).nonzero(as_tuple=True)
            x = torch.cat((box[i], scores[i, j, None], j[:, None].float()), 1)
        else:
            conf, j = scores.max(1, keepdim=True)
            x = torch.cat((box, conf, j.float()), 1)[conf.view(-1) > conf_thres]
        x = x[x[:, 4].argsort(descending=True)[:30000]]
        keep = torchvision.ops.nms(x[:, :4] + x[:, 5:6] * MAX_WH, x[:, 4], iou_thres)[:max_det]
        out.append(x[keep])
    return out


def load_pred(shared: Path, batch: int) -> torch.Tensor:
    cases = torch.load(shared / "reference" / "yolov5" / "nms_cases.pt", weights_only=True)
    pred = torch.zeros(cases["pred_shape"])
    for b, (rows, index) in enumerate(zip(cases["pred_rows"], cases["pred_row_index"])):
        pred[b, index] = rows
    return pred.repeat((batch + 3) // 4, 1, 1)[:batch].contiguous()


def time_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("YOLO_SHARED", REPO.parent / "shared")))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    pred = load_pred(args.shared, args.batch)
    with torch.inference_mode():
        fast = non_max_suppression(pred, **VAL_FLAGS, time_limit=1e9)
        slow = naive_nms(pred, **VAL_FLAGS)
        assert all(torch.equal(a, b) for a, b in zip(fast, slow)), "implementations disagree"
        t_fast = time_ms(lambda: non_max_suppression(pred, **VAL_FLAGS, time_limit=1e9), args.repeats)
        t_slow = time_ms(lambda: naive_nms(pred, **VAL_FLAGS), args.repeats)
    n = args.batch
    print(f"batch {n} x {tuple(pred.shape[1:])}, val flags {VAL_FLAGS}, torch threads {torch.get_num_threads()}")
    print(f"vectorised: {t_fast:8.2f} ms/batch  {t_fast / n:6.3f} ms/image")
    print(f"naive loop: {t_slow:8.2f} ms/batch  {t_slow / n:6.3f} ms/image")
    print(f"speed-up vs naive: {t_slow / t_fast:.2f}x")
    print(f"vs official val.py NMS {OFFICIAL_VAL_NMS_MS} ms/image (perf.md; different images): "
          f"{OFFICIAL_VAL_NMS_MS / (t_fast / n):.2f}x")
    detect_nms(pred, args.repeats)


def detect_nms(pred: torch.Tensor, repeats: int) -> None:
    """detect.py's flags, one image per call: utils/nms.py, the naive loop and utils/nms_numpy.py (same rows)."""
    images, arrays = list(pred.split(1)), [p.numpy() for p in pred.split(1)]
    with torch.inference_mode():
        for t, a in zip(images, arrays):
            want = non_max_suppression(t, **DETECT_FLAGS, time_limit=1e9)[0].numpy()
            assert np.array_equal(want, non_max_suppression_numpy(a, **DETECT_FLAGS)[0]), "NumPy NMS disagrees"
        runs = {"utils/nms.py": lambda: [non_max_suppression(t, **DETECT_FLAGS, time_limit=1e9) for t in images],
                "naive loop": lambda: [naive_nms(t, **DETECT_FLAGS, multi_label=False) for t in images],
                "utils/nms_numpy.py": lambda: [non_max_suppression_numpy(a, **DETECT_FLAGS) for a in arrays]}
        ms = {k: time_ms(fn, repeats) / len(images) for k, fn in runs.items()}
    print(f"detect flags {DETECT_FLAGS}, one image per call: "
          + ", ".join(f"{k} {v:.3f} ms/image" for k, v in ms.items()))


if __name__ == "__main__":
    main()
