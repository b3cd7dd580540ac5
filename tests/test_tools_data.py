"""Converters and data tools on real data (coco128)."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.shared_data import shared_path
from tools.convert import coco_to_yolo, voc_to_yolo, yolo_to_coco

REPO = Path(__file__).resolve().parents[1]


def _read(p: Path) -> np.ndarray:
    return np.loadtxt(p, ndmin=2) if p.exists() else np.zeros((0, 5))


def test_coco2yolo_reproduces_coco128_labels(tmp_path):
    src = shared_path("datasets", "coco128")
    names = coco_to_yolo(src / "annotations" / "instances_train2017.json", tmp_path)
    assert len(names) == 80 and names[0] == "person"
    ref = sorted((src / "labels" / "train2017").glob("*.txt"))
    assert sorted(p.name for p in tmp_path.glob("*.txt")) == [p.name for p in ref]
    n = 0
    for p in ref:
        a, b = _read(tmp_path / p.name), _read(p)
        assert a.shape == b.shape, p.name
        np.testing.assert_allclose(a, b, atol=1e-6, err_msg=p.name)
        n += len(a)
    assert n == 929


def test_yolo2coco_round_trip_exact(tmp_path):
    src = shared_path("datasets", "coco128")
    coco = yolo_to_coco(src / "images" / "train2017", src / "labels" / "train2017", [f"c{i}" for i in range(80)])
    assert len(coco["images"]) == 128 and len(coco["annotations"]) == 929
    (tmp_path / "a.json").write_text(__import__("json").dumps(coco))
    coco_to_yolo(tmp_path / "a.json", tmp_path / "back")
    for p in sorted((src / "labels" / "train2017").glob("*.txt")):
        assert (tmp_path / "back" / p.name).read_text() == p.read_text(), p.name


def test_voc2yolo(tmp_path):
    xml = tmp_path / "xml"
    xml.mkdir()
    (xml / "a.xml").write_text("<annotation><size><width>200</width><height>100</height><depth>3</depth></size>"
                               "<object><name>dog</name><difficult>0</difficult><bndbox><xmin>20</xmin><ymin>10</ymin>"
                               "<xmax>60</xmax><ymax>50</ymax></bndbox></object></annotation>")
    assert voc_to_yolo(xml, tmp_path / "out", ["cat", "dog"]) == 1
    assert (tmp_path / "out" / "a.txt").read_text() == "1 0.2 0.3 0.2 0.4\n"


def test_voc2yolo_reports_boxes_without_area(tmp_path, caplog):
    xml = tmp_path / "xml"
    xml.mkdir()
    objs = [("cat", (20, 10, 60, 50)), ("dog", (70, 30, 70, 60)), ("cat", (5, 5, 25, 40)), ("dog", (80, 50, 90, 40))]
    body = "".join(f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
                   f"<ymax>{d}</ymax></bndbox></object>" for n, (a, b, c, d) in objs)
    (xml / "b.xml").write_text(f"<annotation><size><width>200</width><height>100</height></size>{body}</annotation>")
    with caplog.at_level(logging.WARNING, logger="yolo.data"):
        assert voc_to_yolo(xml, tmp_path / "out", ["cat", "dog"]) == 1
    assert (tmp_path / "out" / "b.txt").read_text() == "0 0.2 0.3 0.2 0.4\n0 0.075 0.225 0.1 0.35\n"
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [f"{xml / 'b.xml'}: object 2 (class 'dog') has no area, xmin 70 ymin 30 xmax 70 ymax 60: "
                      "not written",
                      f"{xml / 'b.xml'}: object 4 (class 'dog') has no area, xmin 80 ymin 50 xmax 90 ymax 40: "
                      "not written"]
    cli = subprocess.run([sys.executable, str(REPO / "tools" / "convert.py"), "voc2yolo", "--xml", str(xml),
                          "--out", str(tmp_path / "cli"), "--names", "cat", "dog"], capture_output=True, text=True)
    assert cli.returncode == 0 and cli.stderr.count("has no area") == 2


def test_convert_help():
    r = subprocess.run([sys.executable, str(REPO / "tools" / "convert.py"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "coco2yolo" in r.stdout


@pytest.mark.slow
def test_analysis_and_browser_write_pictures(tmp_path):
    from utils.data.demo_data import make_shapes_dataset
    import cv2
    root = make_shapes_dataset(tmp_path / "shapes", n_train=12, n_val=4, imgsz=128)
    yaml = tmp_path / "d.yaml"
    yaml.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: [a, b, c, d]\n")
    for tool, args in (("dataset_analysis.py", ["--k", "3"]), ("dataset_browser.py", ["--split", "val"])):
        r = subprocess.run([sys.executable, str(REPO / "tools" / tool), "--data", str(yaml), "--out",
                            str(tmp_path / "runs"), *args], capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    pics = sorted((tmp_path / "runs").rglob("*.jpg"))
    assert len(pics) == 2 and all(cv2.imread(str(p)).shape[0] > 100 for p in pics)


def test_demo_dataset_deterministic(tmp_path):
    from utils.data.demo_data import make_shapes_dataset
    a = make_shapes_dataset(tmp_path / "a", n_train=5, n_val=2, imgsz=96, seed=1)
    b = make_shapes_dataset(tmp_path / "b", n_train=5, n_val=2, imgsz=96, seed=1)
    for f in sorted((a / "labels" / "train").glob("*.txt")):
        assert f.read_text() == (b / "labels" / "train" / f.name).read_text()
        assert (a / "images" / "train" / f"{f.stem}.jpg").read_bytes() == (b / "images" / "train" / f"{f.stem}.jpg").read_bytes()
