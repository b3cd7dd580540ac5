"""Each registered label converter on a tiny hand-made sample in its source format; expected rows computed by hand."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils.converters import CONVERTERS, check_converter_args, run_converter


def _img(path: Path, w: int, h: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)
    return path


def _voc_xml(objects: list[tuple[str, int, tuple[int, int, int, int]]]) -> str:
    objs = "".join(f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                   f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for n, d, b in objects)
    return f"<annotation><size><width>200</width><height>100</height><depth>3</depth></size>{objs}</annotation>"


def test_registry_names_every_format():
    assert set(CONVERTERS) == {"voc", "coco", "argoverse", "wheat", "sku110k", "visdrone", "xview"}
    with pytest.raises(TypeError, match="unexpected keyword argument 'devkitt'"):
        check_converter_args("voc", {"devkitt": "x"})


def test_voc_devkit_as_yolov5(tmp_path):
    kit = tmp_path / "images" / "VOCdevkit" / "VOC2007"
    (kit / "ImageSets" / "Main").mkdir(parents=True)
    (kit / "ImageSets" / "Main" / "train.txt").write_text("000001\n000002\n")
    (kit / "Annotations").mkdir()
    (kit / "Annotations" / "000001.xml").write_text(_voc_xml(
        [("dog", 0, (20, 10, 60, 50)), ("dog", 1, (0, 0, 10, 10)), ("unicorn", 0, (0, 0, 5, 5))]))
    (kit / "Annotations" / "000002.xml").write_text(_voc_xml([("aeroplane", 0, (1, 1, 201, 101))]))
    for i in ("000001", "000002"):
        _img(kit / "JPEGImages" / f"{i}.jpg", 200, 100)
    run_converter("voc", tmp_path, ["aeroplane", "cat", "dog"], {"sets": [["2007", "train"]]})
    # YOLOv5: centre - 1 (1-based pixels), difficult and unknown classes left out, values written with str()
    assert (tmp_path / "labels/train2007/000001.txt").read_text() == "2 0.195 0.29 0.2 0.4\n"
    assert (tmp_path / "labels/train2007/000002.txt").read_text() == "0 0.5 0.5 1.0 1.0\n"
    assert sorted(p.name for p in (tmp_path / "images/train2007").iterdir()) == ["000001.jpg", "000002.jpg"]
    assert not list((kit / "JPEGImages").iterdir())


def test_coco_json_objects365_style(tmp_path):
    _img(tmp_path / "images/train/patch0/sub/x.jpg", 100, 50)
    data = {"categories": [{"id": 5, "name": "b"}, {"id": 2, "name": "a"}],
            "images": [{"id": 7, "file_name": "images/v1/patch0/x.jpg", "width": 100, "height": 50}],
            "annotations": [{"image_id": 7, "category_id": 5, "bbox": [90, 10, 20, 20], "iscrowd": 0},
                            {"image_id": 7, "category_id": 2, "bbox": [0, 0, 50, 25], "iscrowd": 1}]}
    (tmp_path / "train.json").write_text(json.dumps(data))
    run_converter("coco", tmp_path, ["b", "a"], {"sets": [{"json": "train.json", "images": "images/train"}]})
    assert (tmp_path / "images/train/x.jpg").is_file()  # patch folders flattened
    # json category order (5 -> 0), box clipped to the image, crowd kept, 5 decimals
    assert (tmp_path / "labels/train/x.txt").read_text() == \
        "0 0.95000 0.40000 0.10000 0.40000\n1 0.25000 0.25000 0.50000 0.50000\n"


def test_coco_json_class_count_must_match_names(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "a.json").write_text(json.dumps({"categories": [{"id": 1, "name": "x"}], "images": [],
                                                 "annotations": []}))
    with pytest.raises(ValueError, match="1 categories, the data YAML names 2"):
        run_converter("coco", tmp_path, ["x", "y"], {"sets": [{"json": "a.json", "images": "images"}]})


def test_argoverse_json(tmp_path):
    ann = {"images": [{"name": "a.jpg", "sid": 0}], "seq_dirs": ["train/seq1/ring_front_center"],
           "annotations": [{"image_id": 0, "category_id": 2, "bbox": [960, 600, 192, 120]}]}
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann/train.json").write_text(json.dumps(ann))
    run_converter("argoverse", tmp_path, [str(i) for i in range(8)], {"annotations": ["ann/train.json"]})
    lab = tmp_path / "Argoverse-1.1/labels/train/seq1/ring_front_center/a.txt"
    assert lab.read_text() == "2 0.55 0.55 0.1 0.1\n"  # normalised by the fixed 1920 x 1200 frame


def test_global_wheat_csv(tmp_path):
    _img(tmp_path / "images/a.png", 100, 80)
    _img(tmp_path / "images/b.png", 100, 80)
    (tmp_path / "train.csv").write_text('image_name,BoxesString,domain\na.png,10 20 30 60;0 0 40 40,d1\n'
                                        'b.png,no_box,d1\n')
    run_converter("wheat", tmp_path, ["wheat_head"], {"csvs": ["train.csv"]})
    assert (tmp_path / "labels/a.txt").read_text() == \
        "0 0.200000 0.500000 0.200000 0.500000\n0 0.200000 0.250000 0.400000 0.500000\n"
    assert (tmp_path / "labels/b.txt").read_text() == ""


def test_sku110k_csv(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations/annotations_train.csv").write_text(
        "img2.jpg,0,0,50,40,object,100,80\nimg1.jpg,10,20,30,60,object,100,80\nimg1.jpg,0,0,100,80,object,100,80\n")
    run_converter("sku110k", tmp_path, ["object"], {"csvs": {"train": "annotations/annotations_train.csv"}})
    assert (tmp_path / "train.txt").read_text() == "./images/img1.jpg\n./images/img2.jpg\n"
    assert (tmp_path / "labels/img1.txt").read_text() == \
        "0 0.20000 0.50000 0.20000 0.50000\n0 0.50000 0.50000 1.00000 1.00000\n"
    assert (tmp_path / "labels/img2.txt").read_text() == "0 0.25000 0.25000 0.50000 0.50000\n"


def test_sku110k_bad_row_names_file_and_row(tmp_path):
    (tmp_path / "a.csv").write_text("img1.jpg,10,20,30,60,object,100,80\nimg1.jpg,10,20\n")
    with pytest.raises(ValueError, match=r"a.csv: row 2 has 3 columns"):
        run_converter("sku110k", tmp_path, ["object"], {"csvs": {"train": "a.csv"}})


def test_visdrone_txt(tmp_path, caplog):
    d = tmp_path / "VisDrone2019-DET-train"
    _img(d / "images/0001.jpg", 100, 50)
    (d / "annotations").mkdir()
    (d / "annotations/0001.txt").write_text("10,5,20,10,1,4,0,0\n0,0,5,5,0,0,0,0\n1,1,4,4,1,11,0,0\n")
    names = ["pedestrian", "people", "bicycle", "car", "van", "truck", "tricycle", "awning-tricycle", "bus", "motor"]
    run_converter("visdrone", tmp_path, names, {"dirs": ["VisDrone2019-DET-train"]})
    # score 0 (ignored region) skipped, category 4 -> class 3, category 11 ('others') left out with a warning
    assert (d / "labels/0001.txt").read_text() == "3 0.200000 0.200000 0.200000 0.200000\n"
    assert "1 boxes of category 11" in caplog.text


def test_xview_geojson_and_autosplit(tmp_path):
    for i in (1, 2, 4, 5):
        _img(tmp_path / f"images/train/{i}.tif", 100, 50)
    feats = [{"properties": {"image_id": "1.tif", "type_id": 11, "bounds_imcoords": "10,5,30,25"}},
             {"properties": {"image_id": "1.tif", "type_id": 12, "bounds_imcoords": "90,40,120,60"}},
             {"properties": {"image_id": "2.tif", "type_id": 14, "bounds_imcoords": "0,0,10,10"}},  # not a class
             {"properties": {"image_id": "3.tif", "type_id": 11, "bounds_imcoords": "0,0,10,10"}},  # no image
             {"properties": {"image_id": "4.tif", "type_id": 94, "bounds_imcoords": "0,0,50,50"}}]
    (tmp_path / "xView_train.geojson").write_text(json.dumps({"features": feats}))
    run_converter("xview", tmp_path, [str(i) for i in range(60)], {})
    assert (tmp_path / "labels/train/1.txt").read_text() == \
        "0 0.200000 0.300000 0.200000 0.400000\n1 0.950000 0.900000 0.100000 0.200000\n"
    assert not (tmp_path / "labels/train/2.txt").exists()
    assert (tmp_path / "labels/train/4.txt").read_text() == "59 0.250000 0.500000 0.500000 1.000000\n"
    # YOLOv5's autosplit: random.seed(0), one weighted draw per sorted image
    picks = random.Random(0).choices([0, 1, 2], weights=(0.9, 0.1, 0.0), k=4)
    want = {0: [], 1: []}
    for k, name in zip(picks, ["1.tif", "2.tif", "4.tif", "5.tif"]):
        want[k].append(f"./train/{name}\n")
    for k, f in ((0, "autosplit_train.txt"), (1, "autosplit_val.txt")):
        p = tmp_path / "images" / f
        assert (p.read_text() if p.exists() else "") == "".join(want[k])
