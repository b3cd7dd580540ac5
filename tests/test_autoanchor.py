"""AutoAnchor on coco128 against the official check_anchors results, k-means + GA quality, order checks."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from tests.shared_data import shared_path
from utils.autoanchor import (anchor_fitness, anchor_metrics, anchors_yaml, check_anchor_order, check_anchors,
                              kmean_anchors, label_wh, main)

STRIDE = torch.tensor([8.0, 16.0, 32.0])
EXIF_ORIENTATION = 0x0112


def _exif_size(path: Path) -> tuple[int, int]:
    """(w, h) as displayed: swapped for EXIF orientations that rotate by 90 degrees."""
    with Image.open(path) as im:
        w, h = im.size
        if im.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
            w, h = h, w
    return w, h


@pytest.fixture(scope="module")
def coco128() -> SimpleNamespace:
    root = shared_path("datasets", "coco128")
    shapes, labels = [], []
    for img in sorted((root / "images" / "train2017").glob("*.jpg")):
        shapes.append(_exif_size(img))
        txt = root / "labels" / "train2017" / f"{img.stem}.txt"
        lab = np.loadtxt(txt, dtype=np.float32, ndmin=2) if txt.exists() else np.zeros((0, 5), np.float32)
        labels.append(lab.reshape(-1, 5))
    return SimpleNamespace(shapes=np.array(shapes), labels=labels)


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(shared_path("reference", "yolov5", "autoanchor.json").read_text())


def _head(anchors_px: np.ndarray | list) -> SimpleNamespace:
    px = torch.tensor(anchors_px, dtype=torch.float32).view(3, 3, 2)
    return SimpleNamespace(anchors=px / STRIDE.view(-1, 1, 1), stride=STRIDE.clone())


def test_anchor_metrics_without_scale_match_reference(coco128: SimpleNamespace, reference: dict) -> None:
    wh = label_wh(coco128.shapes, coco128.labels, 640)
    ref = reference["check_anchors_noscale"]
    assert len(wh) == ref["n_wh"] == 929
    bpr, aat = anchor_metrics(wh, np.array(reference["default_anchors_px"]), thr=4.0)
    assert bpr == pytest.approx(ref["bpr"], abs=1e-7)
    assert aat == pytest.approx(ref["anchors_per_target"], abs=1e-6)


def test_check_anchors_seed0_matches_reference(coco128: SimpleNamespace, reference: dict) -> None:
    head = _head(reference["default_anchors_px"])
    before = head.anchors.clone()
    np.random.seed(0)
    out = check_anchors(coco128, head, thr=4.0, imgsz=640)
    ref = reference["check_anchors_seed0"]
    assert out.bpr == pytest.approx(ref["bpr"], abs=1e-7)
    assert out.aat == pytest.approx(ref["anchors_per_target"], abs=1e-6)
    assert not out.updated and torch.equal(head.anchors, before)


def test_check_anchors_refits_poor_anchors_in_stride_order(coco128: SimpleNamespace) -> None:
    head = _head([[4, 4]] * 9)  # far too small for coco128 at 640
    buffer = head.anchors
    np.random.seed(0)
    out = check_anchors(coco128, head, thr=4.0, imgsz=640)
    assert out.updated and out.bpr > 0.98
    assert head.anchors is buffer  # written in place: the model's state_dict sees the new anchors
    pixels = head.anchors * STRIDE.view(-1, 1, 1)
    area = pixels.prod(-1).mean(-1)
    assert torch.all(area[1:] > area[:-1])  # small anchors on the stride-8 level
    wh = label_wh(coco128.shapes, coco128.labels, 640)
    assert anchor_metrics(wh, pixels.view(-1, 2), 4.0)[0] > 0.98


def test_kmean_anchors_reaches_official_quality(coco128: SimpleNamespace) -> None:
    # Official YOLOv5 reaches 0.644 / 0.688 / 0.659 for seeds 0-2; like it, about 1 run in 4-5 stops
    # in a 0.639 local optimum (measured over 30 seeds for both), so one seed is pinned here.
    k = kmean_anchors(coco128, n=9, img_size=640, thr=4.0, gen=1000, verbose=False,
                      rng=np.random.default_rng(0))
    assert k.shape == (9, 2) and k.dtype == np.float32
    assert np.all(np.diff(k.prod(1)) >= 0)  # sorted by area
    wh0 = label_wh(coco128.shapes, coco128.labels, 640)
    assert anchor_fitness(k, wh0[(wh0 >= 2.0).any(1)], 4.0) >= 0.64
    assert anchor_metrics(wh0, k, 4.0)[0] >= 0.98


def test_kmean_anchors_falls_back_to_random_init_with_few_labels() -> None:
    ds = SimpleNamespace(shapes=np.array([[640, 480]]), labels=[np.array([[0, 0.5, 0.5, 0.2, 0.3]], np.float32)])
    k = kmean_anchors(ds, n=3, img_size=640, gen=50, verbose=False, rng=np.random.default_rng(1))
    assert k.shape == (3, 2) and np.all(k >= 2.0)


def test_check_anchor_order_flips_reversed_anchors() -> None:
    good = [[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119], [116, 90], [156, 198], [373, 326]]
    head = _head(good)
    expect = head.anchors.clone()
    assert not check_anchor_order(head) and torch.equal(head.anchors, expect)
    reversed_px = torch.tensor(good, dtype=torch.float32).view(3, 3, 2).flip(0)
    head.anchors = reversed_px / STRIDE.view(-1, 1, 1)
    assert check_anchor_order(head)
    torch.testing.assert_close(head.anchors, expect)


def test_bad_dataset_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"labels\[1\]"):
        label_wh(np.array([[10, 10], [10, 10]]), [np.zeros((0, 5)), np.zeros((2, 3))], 640)
    with pytest.raises(ValueError, match="shapes"):
        label_wh(np.array([10, 10]), [np.zeros((0, 5))], 640)


def test_anchors_yaml_rows() -> None:
    text = anchors_yaml(np.arange(1, 19, dtype=np.float32).reshape(9, 2))
    assert text.splitlines()[1] == "  - [1,2, 3,4, 5,6]  # level 0"
    assert len(text.splitlines()) == 4


def test_cli_prints_anchor_rows(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = shared_path("datasets", "coco128")
    cfg = tmp_path / "data.yaml"
    cfg.write_text(f"path: {root}\ntrain: images/train2017\nval: images/train2017\nnc: 80\n"
                   f"names: {[f'c{i}' for i in range(80)]}\n")
    assert main(["--data", str(cfg), "--img", "640", "--n", "9", "--gen", "200", "--seed", "0"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  - [")]
    assert len(rows) == 3 and all(row.count(",") == 5 for row in rows)
