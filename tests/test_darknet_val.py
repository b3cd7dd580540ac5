"""val.py on Darknet .cfg + .weights: the YOLOv5 pipeline and --darknet-mode (Darknet's own resize, thresholds and
NMS) on coco128 images. On all 128 images at 416 (README): yolov4-tiny mAP50-95 0.304 (YOLOv5 pipeline) / 0.308
(Darknet mode), yolov3-tiny 0.153 / 0.151."""
from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import yaml

import val
from models import load_model
from models.backends import darknet_rows
from tests.shared_data import shared_path
from utils.boxes import clip_boxes
from utils.yolo_txt import detection_lines

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
# 16 images, imgsz 416: mAP50 measured here (YOLOv5 pipeline, Darknet mode) 0.733 / 0.768 and 0.538 / 0.568
SANE_MAP50 = {"yolov4-tiny": (0.65, 0.85), "yolov3-tiny": (0.45, 0.65)}


def _coco16(tmp: Path) -> Path:
    root = shared_path("datasets", "coco128")
    images = sorted((root / "images" / "train2017").glob("*.jpg"))[:16]
    (tmp / "val.txt").write_text("".join(f"{p}\n" for p in images))
    names = yaml.safe_load((root / "coco128.yaml").read_text())["names"]
    out = tmp / "coco16.yaml"
    out.write_text(yaml.safe_dump({"path": str(tmp), "train": "val.txt", "val": "val.txt", "names": names}))
    return out


@pytest.mark.parametrize("name", ["yolov4-tiny", "yolov3-tiny"])
def test_val_on_darknet_weights_both_pipelines(tmp_path: Path, name: str) -> None:
    data, lo_hi = _coco16(tmp_path), SANE_MAP50[name]
    weights, cfg = shared_path("darknet", f"{name}.weights"), shared_path("darknet", f"{name}.cfg")
    got = {}
    for mode in (False, True):
        r, _, _ = val.run(str(data), str(weights), cfg=str(cfg), imgsz=416, batch_size=8, darknet_mode=mode,
                          project=str(tmp_path / "runs"), name=f"m{int(mode)}", plots=False, workers=0,
                          save_txt=mode, save_conf=True)
        got[mode] = r[2]
        assert lo_hi[0] < r[2] < lo_hi[1], f"{name} darknet_mode={mode}: mAP50 {r[2]:.3f} outside {lo_hi}"
    assert abs(got[True] - got[False]) < 0.08  # two preprocessings of one model: close, not equal
    # Darknet mode: the rows val.py scores are Darknet's own (clipped to the image, as every pipeline's are),
    # mapped through the letterbox and back exactly
    model = load_model(weights, cfg=cfg)
    first = sorted((tmp_path / "val.txt").read_text().split())[0]
    im0 = cv2.imread(first)
    rows = darknet_rows(model, im0, 0.001, 0.6)[:300]
    clip_boxes(rows[:, :4], im0.shape[:2])
    want = detection_lines(rows, im0.shape[:2], True)
    lines = (tmp_path / "runs" / "m1" / "labels" / f"{Path(first).stem}.txt").read_text().splitlines()
    parse = lambda ls: sorted(tuple(float(v) for v in ln.split()) for ln in ls)  # noqa: E731
    got_rows, want_rows = parse(lines), parse(want)
    assert len(got_rows) == len(want_rows) > 10
    for a, b in zip(got_rows, want_rows):  # equal up to the float32 round trip through the letterbox
        assert a[0] == b[0] and max(abs(x - y) for x, y in zip(a[1:], b[1:])) < 1e-5
