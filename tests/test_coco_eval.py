"""COCO-json helpers: coco128's own labels fed back as predictions score mAP 1.0 with pycocotools."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tests.shared_data import shared_path
from utils.boxes import xywhn2xyxy
from utils.coco_eval import (COCO80_NAMES, category_ids, coco80_to_coco91, evaluate_coco, image_id_for, image_ids,
                             load_json, save_results, to_coco_results)


@pytest.fixture(scope="module")
def coco128() -> Path:
    return shared_path("datasets", "coco128")


@pytest.fixture(scope="module")
def anno_json(coco128: Path) -> Path:
    return coco128 / "annotations" / "instances_train2017.json"


def label_predictions(root: Path) -> dict[Path, torch.Tensor]:
    """Every image's YOLO labels as (n, 6) [x1, y1, x2, y2, 1.0, cls] in original pixels."""
    preds = {}
    for image in sorted((root / "images" / "train2017").glob("*.jpg")):
        w, h = Image.open(image).size
        label = root / "labels" / "train2017" / f"{image.stem}.txt"
        rows = np.loadtxt(label, ndmin=2) if label.exists() else np.zeros((0, 5))
        boxes = xywhn2xyxy(rows[:, 1:5], w, h)
        preds[image] = torch.tensor(np.concatenate((boxes, np.ones((len(rows), 1)), rows[:, :1]), 1))
    return preds


def results_for(preds: dict[Path, torch.Tensor], anno: dict, names: list[str]) -> list[dict]:
    ids, cats = image_ids(anno), category_ids(names, anno["categories"])
    return [r for path, p in preds.items() for r in to_coco_results(p, image_id_for(path, ids), cats)]


def test_ground_truth_as_predictions_scores_one(coco128: Path, anno_json: Path, tmp_path: Path) -> None:
    names = yaml.safe_load((coco128 / "coco128.yaml").read_text())["names"]
    anno = load_json(anno_json)
    preds = label_predictions(coco128)
    results = results_for(preds, anno, names)
    assert len(preds) == 128 and len(results) == 929
    perfect = evaluate_coco(anno_json, save_results(results, tmp_path / "perfect.json"))
    assert perfect == pytest.approx((1.0, 1.0), abs=1e-9)

    g = torch.Generator().manual_seed(0)
    noisy = {k: torch.cat((v[:, :4] + torch.randn(len(v), 4, generator=g, dtype=v.dtype) * 8, v[:, 4:]), 1)
             for k, v in preds.items()}
    worse = evaluate_coco(anno_json, save_results(results_for(noisy, anno, names), tmp_path / "noisy.json"))
    assert worse[0] < 0.9 and worse[1] < 1.0 and worse[0] < worse[1]
    # restricting to half of the images evaluates only those
    half = sorted(image_ids(anno).values())[:64]
    assert evaluate_coco(anno_json, tmp_path / "perfect.json", img_ids=half) == pytest.approx((1.0, 1.0))


def test_result_format() -> None:
    pred = torch.tensor([[10.0, 20.0, 40.5, 60.25, 0.123456789, 2.0]])
    out = to_coco_results(pred, 42, coco80_to_coco91())
    assert out == [{"image_id": 42, "category_id": 3, "bbox": [10.0, 20.0, 30.5, 40.25], "score": 0.12346}]
    assert to_coco_results(torch.zeros((0, 6)), 1, [1]) == []
    with pytest.raises(ValueError, match="class index"):
        to_coco_results(torch.tensor([[0.0, 0, 1, 1, 0.5, 3]]), 7, [1, 2])


def test_category_mapping(anno_json: Path) -> None:
    cats = load_json(anno_json)["categories"]
    ids = coco80_to_coco91()
    assert len(ids) == 80 and ids[:12] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13] and ids[-1] == 90
    assert category_ids(list(COCO80_NAMES), cats) == ids  # by name agrees with the standard table
    assert category_ids(COCO80_NAMES) == ids  # no categories given: COCO names fall back to the table
    assert category_ids({0: "dog", 1: "person"}, cats) == [18, 1]
    with pytest.raises(ValueError, match="unicorn"):
        category_ids(["person", "unicorn"], cats)


def test_image_lookup_and_bad_files(anno_json: Path, tmp_path: Path) -> None:
    ids = image_ids(load_json(anno_json))
    assert image_id_for("/somewhere/else/000000000009.jpg", ids) == 9
    with pytest.raises(KeyError, match="not_there.jpg"):
        image_id_for("not_there.jpg", ids)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_json(bad)
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="categories"):
        load_json(bad)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_json(tmp_path / "missing.json")
    unknown = save_results([{"image_id": 123456789, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}],
                           tmp_path / "unknown.json")
    with pytest.raises(ValueError, match="123456789"):
        evaluate_coco(anno_json, unknown)
    assert evaluate_coco(anno_json, save_results([], tmp_path / "empty.json")) == (0.0, 0.0)
