"""Data pipeline against the official YOLOv5 references: letterbox, rect batch shapes, coco128 scan."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.shared_data import shared_path
from utils.data.augment import letterbox
from utils.data.data_yaml import load_data_yaml
from utils.data.dataloaders import LoadImagesAndLabels


def _cases():
    return json.loads(shared_path("reference", "yolov5", "letterbox_cases.json").read_text())


def test_letterbox_matches_reference():
    cases = _cases()
    root = shared_path("datasets", "coco128", "images", "train2017")
    n = 0
    for entry in cases["images"]:
        im0 = cv2.imread(str(root / entry["image"]))
        assert list(im0.shape) == entry["orig_shape_hwc"]
        for c in entry["cases"]:
            shape = c["new_shape"] if isinstance(c["new_shape"], int) else tuple(c["new_shape"])
            im, ratio, pad = letterbox(im0, shape, color=tuple(c["color"]), auto=c["auto"], scaleup=c["scaleup"],
                                       scaleFill=c["scaleFill"], stride=c["stride"])
            assert list(im.shape) == c["out_shape_hwc"], (entry["image"], c)
            assert list(ratio) == pytest.approx(c["ratio"], abs=1e-12)
            assert list(pad) == pytest.approx(c["pad_dw_dh"], abs=1e-12)
            n += 1
    assert n == sum(len(e["cases"]) for e in cases["images"]) > 20


@pytest.fixture(scope="module")
def coco128_rect16():
    return LoadImagesAndLabels(shared_path("datasets", "coco128", "images", "train2017"), img_size=640,
                               batch_size=16, rect=True, stride=32, pad=0.5)


def test_rect_batch_shapes_match_reference(coco128_rect16):
    ref = _cases()["rect_batch_shapes"]
    ds = coco128_rect16
    assert ds.batch_shapes.tolist() == ref["batch_shapes_hw"]
    assert [Path(f).name for f in ds.im_files] == ref["im_files_sorted"]
    assert ds.shapes.astype(int).tolist() == ref["shapes_wh_sorted"]
    assert ds.batch.tolist() == ref["batch_index"]


def test_rect_batch_shapes_bs32():
    ref = _cases()["rect_batch_shapes_bs32"]["batch_shapes_hw"]
    ds = LoadImagesAndLabels(shared_path("datasets", "coco128", "images", "train2017"), batch_size=32, rect=True,
                             pad=0.5)
    assert ds.batch_shapes.tolist() == ref


def test_coco128_yaml_loads_and_counts(caplog):
    cfg = load_data_yaml(shared_path("datasets", "coco128", "coco128.yaml"))
    assert cfg.nc == 80 and len(cfg.names) == 80 and cfg.names[0] == "person"
    with caplog.at_level(logging.INFO, logger="yolo.data"):
        ds = LoadImagesAndLabels(cfg.train[0], nc=cfg.nc)
    assert len(ds) == 128
    assert sum(len(lb) for lb in ds.labels) == 929
    assert ds.scan.counts == {"found": 126, "missing": 2, "empty": 0, "corrupt": 0}
    assert "2 background images" in caplog.text and "0 corrupt" in caplog.text
    assert ds.shapes.shape == (128, 2) and ds.shapes.min() >= 10


def test_val_item_shapes_follow_yolov5(coco128_rect16):
    ds = coco128_rect16
    i = ds.im_files.index(str(Path(ds.im_files[0]).parent / "000000000009.jpg"))
    im, targets, path, shapes = ds[i]
    (h0, w0), ((gh, gw), (padw, padh)) = shapes
    assert (h0, w0) == (480, 640) and (gh, gw) == (1.0, 1.0)
    bh, bw = ds.batch_shapes[ds.batch[i]]
    assert tuple(im.shape) == (3, bh, bw)
    assert padh == (bh - 480) / 2 and padw == (bw - 640) / 2
    # boxes map back to the label file exactly (up to float32)
    lb = ds.labels[i]
    xy = targets[:, 2:4].numpy() * [bw, bh] - [padw, padh]
    np.testing.assert_allclose(xy / [w0, h0], lb[:, 1:3], atol=2e-6)
