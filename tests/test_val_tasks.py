"""val.py --task speed (YOLOv5's thresholds, timings reported) and --task study (one row per image size)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

import val
from tests.shared_data import shared_path
from utils.plot_study import STUDY_COLUMNS, read_study

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

STEMS = ("000000000009", "000000000025", "000000000030", "000000000034")


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    src = shared_path("datasets", "coco128")
    for sub in ("images", "labels"):
        (tmp_path / sub).mkdir()
    for s in STEMS:
        shutil.copy(src / "images" / "train2017" / f"{s}.jpg", tmp_path / "images")
        shutil.copy(src / "labels" / "train2017" / f"{s}.txt", tmp_path / "labels")
    names = yaml.safe_load((src / "coco128.yaml").read_text())["names"]
    f = tmp_path / "four.yaml"
    f.write_text(yaml.safe_dump({"path": str(tmp_path), "train": "images", "val": "images", "names": names}))
    return f


def _confidences(folder: Path) -> list[float]:
    return [float(ln.split()[5]) for f in (folder / "labels").glob("*.txt") for ln in f.read_text().splitlines()]


@pytest.mark.slow
def test_speed_task_thresholds_and_timings(data, tmp_path, caplog):
    weights = str(shared_path("weights", "yolov5n.pt"))
    common = ["--data", str(data), "--img", "160", "--batch", "2", "--workers", "0",
              "--save-txt", "--save-conf", "--device", "cpu",
              "--project", str(tmp_path / "runs")]
    val.main(["--weights", weights, *common, "--name", "val"])
    with caplog.at_level("INFO", logger="yolo.val"):
        out = val.main(["--task", "speed", "--weights", weights, weights, *common, "--name", "speed"])
    assert len(out) == 2  # one run per weights
    m = re.findall(r"Speed: ([\d.]+)ms pre-process, ([\d.]+)ms inference, ([\d.]+)ms NMS per image at shape "
                   r"\(2, 3, 160, 160\)", caplog.text)
    assert len(m) == 2 and all(float(t) > 0 for t in (m[0][1], m[1][1]))
    speeds = json.loads((tmp_path / "runs" / "speed" / "metrics.json").read_text())["speed_ms_per_image"]
    assert speeds["inference"] > 0
    low = _confidences(tmp_path / "runs" / "val")
    fast = _confidences(tmp_path / "runs" / "speed")
    assert fast and min(fast) >= 0.25 and min(low) < 0.25 and len(fast) < len(low)  # conf 0.25, not 0.001
    assert not list((tmp_path / "runs" / "speed").glob("*.png"))  # no plots


@pytest.mark.slow
def test_study_task_one_row_per_size(data, tmp_path):
    weights = str(shared_path("weights", "yolov5n.pt"))
    sizes = [96, 160, 224]
    out = val.main(["--task", "study", "--weights", weights, "--data", str(data), "--batch", "4", "--device",
                    "cpu", "--workers", "0", "--study-sizes", *map(str, sizes), "--project", str(tmp_path / "runs")])
    f = out / "study_four_yolov5n.txt"
    y = read_study(f)
    assert y.shape == (3, len(STUDY_COLUMNS))
    for row, sz in zip(y, sizes):  # each row is the validation at that size
        m = json.loads((out / f"yolov5n_{sz}" / "metrics.json").read_text())
        np.testing.assert_allclose(row[:4], [m["P"], m["R"], m["mAP50"], m["mAP50_95"]], rtol=1e-3, atol=1e-4)
        assert row[8] > 0
    assert len({tuple(r[:4]) for r in y}) == 3 and y[2, 3] > y[0, 3]  # mAP grows from 96 to 224 px
    assert (out / "study.png").stat().st_size > 10_000
