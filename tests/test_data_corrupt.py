"""A coco128 subset broken in every listed way: each problem reported with its path, good images kept."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.shared_data import shared_path
from utils.dataloaders import LoadImagesAndLabels
from utils.label_cache import cache_path_for

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
    lab(4).write_text("0 0.5 0.5 -0.2 0.2\n")  # negative width
    lab(5).write_text("99 0.5 0.5 0.2 0.2\n")  # class 99 with nc 80
    row = lab(6).read_text().splitlines()[0]
    lab(6).write_text(f"{row}\n{row}\n")  # duplicate rows
    lab(7).unlink()  # image with no label file
    cache_path_for([str(lab(8))]).write_bytes(b"\x80\x04garbage, not a cache")  # unreadable cache
    return {"root": tmp_path, "stems": stems, "img": img, "lab": lab}


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
    assert f"{lab(4)}: skipped, row 1: width and height must be positive" in log
    assert f"{lab(5)}: skipped, row 1: class id 99 >= nc 80" in log
    assert f"{lab(6)}: 1 duplicate row(s) removed" in log
    assert ds.scan.counts == {"found": 6, "missing": 1, "empty": 0, "corrupt": 5}
    assert "6 labels found, 1 missing, 0 empty, 5 corrupt" in log
    kept = {Path(f).name for f in ds.im_files}
    assert kept == {img(i).name for i in (0, 6, 7, 8, 9, 10, 11)}
    assert len(ds.labels[ds.im_files.index(str(img(6)))]) == 1
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
    assert "cache not saved" in caplog.text and len(ds) == 7
