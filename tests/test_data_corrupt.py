"""A coco128 subset broken in every listed way: each problem reported with its path, good images kept; rows that
are not boxes (zero/negative size, duplicates) dropped alone, the image and its other rows kept, in training and val."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

import val
from tests.shared_data import shared_path
from utils.data.dataloaders import LoadImagesAndLabels
from utils.data.label_cache import cache_path_for

N_IMAGES = 12


@pytest.fixture()
def broken(tmp_path: Path) -> dict[str, Path]:
    src = shared_path("datasets", "coco128")
    ims = sorted((src / "images" / "train2017").glob("*.jpg"))
    ims = [p for p in ims if (src / "labels" / "train2017" / f"{p.stem}.txt").exists()][:N_IMAGES]
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for p in ims:
        shutil.copy(p, tmp_path / "images" / p.name)
        shutil.copy(src / "labels" / "train2017" / f"{p.stem}.txt", tmp_path / "labels" / f"{p.stem}.txt")
    stems = [p.stem for p in ims]
    lab = lambda i: tmp_path / "labels" / f"{stems[i]}.txt"  # noqa: E731
    img = lambda i: tmp_path / "images" / f"{stems[i]}.jpg"  # noqa: E731
    data = img(0).read_bytes()
    img(0).write_bytes(data[: int(len(data) * 0.7)])  # truncated JPEG (still decodable)
    img(1).write_text("this is not an image\n")  # text file named .jpg
    lab(2).write_text("0 0.5 0.5 0.2\n")  # 4 columns
    lab(3).write_text("0 1.7 0.5 0.2 0.2\n")  # coordinate 1.7
    rows4 = lab(4).read_text().splitlines()
    lab(4).write_text("\n".join([rows4[0], "0 0.5 0.5 -0.2 0.2", *rows4[1:], "7 0.3 0.3 0.1 0"]) + "\n")
    lab(5).write_text("99 0.5 0.5 0.2 0.2\n")  # class 99 with nc 80
    row = lab(6).read_text().splitlines()[0]
    lab(6).write_text(f"{row}\n{row}\n")  # duplicate rows
    lab(7).unlink()  # image with no label file
    cache_path_for([str(lab(8))]).write_bytes(b"\x80\x04garbage, not a cache")  # unreadable cache
    return {"root": tmp_path, "stems": stems, "img": img, "lab": lab, "rows4": rows4}


def test_every_problem_reported_and_good_images_kept(broken, caplog):
    img, lab = broken["img"], broken["lab"]
    with caplog.at_level(logging.INFO, logger="yolo.data"):
        ds = LoadImagesAndLabels(broken["root"] / "images", img_size=320, nc=80)
    log = caplog.text
    assert "unreadable cache" in log
    assert f"{img(0)}: truncated JPEG restored" in log
    assert f"{img(1)}: skipped, not a readable image" in log
    assert f"{lab(2)}: skipped, row 1 has 4 columns" in log
    assert f"{lab(3)}: skipped, row 1: coordinates must be normalised" in log
    n4 = len(broken["rows4"])
    assert (f"{lab(4)}: row 2 dropped, width -0.2 height 0.2 is not a box (class 0, 0.5 0.5 -0.2 0.2); "
            f"row {n4 + 2} dropped, width 0.1 height 0 is not a box (class 7, 0.3 0.3 0.1 0)") in log
    assert f"{lab(5)}: skipped, row 1: class id 99 >= nc 80" in log
    assert f"{lab(6)}: 1 duplicate row(s) removed (row 2 repeats row 1)" in log
    assert ds.scan.counts == {"found": 7, "missing": 1, "empty": 0, "corrupt": 4} and ds.scan.rows_dropped == 3
    assert ("7 labels found, 1 missing, 0 empty, 4 corrupt (1 background images, 8 images kept); "
            "3 label rows dropped, 4 files skipped") in log
    kept = {Path(f).name for f in ds.im_files}
    assert kept == {img(i).name for i in (0, 4, 6, 7, 8, 9, 10, 11)}
    assert len(ds.labels[ds.im_files.index(str(img(6)))]) == 1
    good4 = np.array([r.split() for r in broken["rows4"]], np.float32)
    np.testing.assert_array_equal(ds.labels[ds.im_files.index(str(img(4)))], good4)  # every good row, in order
    assert len(ds.labels[ds.im_files.index(str(img(7)))]) == 0
    # the repaired JPEG now ends with EOI and every kept image loads
    assert img(0).read_bytes()[-2:] == b"\xff\xd9"
    for i in range(len(ds)):
        im, targets, _, _ = ds[i]
        assert im.shape == (3, 320, 320)


def test_cache_reused_then_rebuilt_when_stale(broken, caplog):
    root = broken["root"]
    LoadImagesAndLabels(root / "images", img_size=320, nc=80)
    cache = cache_path_for([str(broken["lab"](8))])
    assert cache.exists()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="yolo.data"):
        LoadImagesAndLabels(root / "images", img_size=320, nc=80)
    assert "stale" not in caplog.text and "Scanning" not in caplog.text
    broken["lab"](9).write_text("0 0.5 0.5 0.1 0.1\n")  # size changes -> hash changes
    with caplog.at_level(logging.INFO, logger="yolo.data"):
        ds = LoadImagesAndLabels(root / "images", img_size=320, nc=80)
    assert "stale" in caplog.text
    np.testing.assert_array_equal(ds.labels[ds.im_files.index(str(broken["img"](9)))],
                                  np.array([[0, 0.5, 0.5, 0.1, 0.1]], np.float32))


def test_read_only_folder_still_loads(broken, caplog):
    folder = broken["root"]  # the cache goes next to the labels folder: <root>/labels.cache
    folder.chmod(0o555)
    try:
        with caplog.at_level(logging.INFO, logger="yolo.data"):
            ds = LoadImagesAndLabels(broken["root"] / "images", img_size=320, nc=80)
    finally:
        folder.chmod(0o755)
    assert "cache not saved" in caplog.text and len(ds) == 8


def test_nan_row_still_skips_the_file(broken, caplog):
    broken["lab"](9).write_text("0 0.5 0.5 0.2 0.2\n0 nan 0.5 0.2 0.2\n")
    with caplog.at_level(logging.INFO, logger="yolo.data"):
        ds = LoadImagesAndLabels(broken["root"] / "images", img_size=320, nc=80)
    assert f"{broken['lab'](9)}: skipped, row 2: non-finite value" in caplog.text
    assert str(broken["img"](9)) not in ds.im_files


def _val_set(tmp: Path, extra_row: str | None) -> Path:
    """Four coco128 images (val = train split), optionally with one more row in the first label file."""
    src = shared_path("datasets", "coco128")
    stems = ("000000000009", "000000000025", "000000000030", "000000000034")
    for sub in ("images", "labels"):
        (tmp / sub).mkdir(parents=True)
    for s in stems:
        shutil.copy(src / "images" / "train2017" / f"{s}.jpg", tmp / "images")
        shutil.copy(src / "labels" / "train2017" / f"{s}.txt", tmp / "labels")
    if extra_row:
        with open(tmp / "labels" / f"{stems[0]}.txt", "a") as f:
            f.write(extra_row + "\n")
    names = yaml.safe_load((src / "coco128.yaml").read_text())["names"]
    (tmp / "data.yaml").write_text(yaml.safe_dump({"path": str(tmp), "train": "images", "val": "images",
                                                   "names": names}))
    return tmp / "data.yaml"


def test_validation_counts_every_image_despite_a_degenerate_row(tmp_path):
    """A zero-width box in one file: val counts all 4 images and gives the figures of the clean set."""
    weights = shared_path("weights", "yolov5n.pt")
    out = {}
    for name, row in (("clean", None), ("degenerate", "45 0.5 0.5 0 0.3")):
        data = _val_set(tmp_path / name, row)
        r, _, _ = val.run(data, weights, batch_size=4, imgsz=160, device="cpu", plots=False,
                          project=tmp_path / "runs", name=name)
        out[name] = r, json.loads((tmp_path / "runs" / name / "metrics.json").read_text())
    assert out["degenerate"][1]["images"] == out["clean"][1]["images"] == 4
    assert out["degenerate"][1]["instances"] == out["clean"][1]["instances"] > 0
    assert out["degenerate"][0] == out["clean"][0] and out["clean"][0][2] > 0
