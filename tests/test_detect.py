"""detect.py: the official yolov5n detections, every source kind, batched == one-by-one."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import detect
from tests.detections import assert_same_detections
from tests.shared_data import shared_path
from utils.data.sources import iter_source, source_kind

STEMS = ("000000000009", "000000000025", "000000000030", "000000000034")


@pytest.fixture(scope="module")
def weights() -> Path:
    return shared_path("weights", "yolov5n.pt")


@pytest.fixture()
def images(tmp_path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for s in STEMS:
        shutil.copy(shared_path("datasets", "coco128", "images", "train2017", f"{s}.jpg"), folder)
    return folder


def _run(weights, source, tmp_path, **kw):
    kw.setdefault("imgsz", [320])
    return detect.run(weights, source, project=str(tmp_path / "runs"), **kw)


def test_reference_detections_yolov5n_640(weights, tmp_path):
    """--img 640 with the reference's letterbox (auto=False): nms_640_scaled_rounded exactly, and its txt rows."""
    ref = torch.load(shared_path("reference", "yolov5", "yolov5n_forward.pt"), weights_only=True)
    image = shared_path("datasets", "coco128", "images", "train2017", "000000000009.jpg")
    save_dir, res = _run(weights, image, tmp_path, imgsz=[640], auto=False, save_txt=True, save_conf=True)
    det, expected = torch.from_numpy(res[0][2]), ref["nms_640_scaled_rounded"]
    assert det.shape == expected.shape
    assert torch.equal(det[:, :4], expected[:, :4]) and torch.equal(det[:, 5], expected[:, 5])
    torch.testing.assert_close(det[:, 4], expected[:, 4], atol=1e-4, rtol=0)
    rows = [list(map(float, ln.split())) for ln in (save_dir / "labels" / "000000000009.txt").read_text().splitlines()]
    h, w = 480, 640
    for row, e in zip(rows, expected.tolist()):
        assert row[0] == e[5] and row[5] == pytest.approx(e[4], abs=1e-4)
        assert row[1] == pytest.approx((e[0] + e[2]) / 2 / w, abs=1e-5)  # %g: 6 significant digits
        assert row[4] == pytest.approx((e[3] - e[1]) / h, abs=1e-5)
    assert (save_dir / "000000000009.jpg").is_file()


def test_default_letterbox_is_minimal_and_close(weights, tmp_path):
    """detect.py's default (auto=True) runs 000000000009 at 480x640 and finds the same three objects."""
    ref = torch.load(shared_path("reference", "yolov5", "yolov5n_forward.pt"), weights_only=True)
    image = shared_path("datasets", "coco128", "images", "train2017", "000000000009.jpg")
    _, res = _run(weights, image, tmp_path, imgsz=[640], nosave=True)
    det = res[0][2]
    assert sorted(det[:, 5].tolist()) == sorted(ref["nms_640_scaled_rounded"][:, 5].tolist())


def test_batched_equals_one_by_one(weights, images, tmp_path):
    _, one = _run(weights, images, tmp_path, batch_size=1, nosave=True)
    _, many = _run(weights, images, tmp_path, batch_size=4, nosave=True)
    assert [r[0] for r in one] == [r[0] for r in many]
    for (path, _, a), (_, _, b) in zip(one, many):
        # boxes are rounded to whole pixels (as YOLOv5 writes them): a float difference may flip one at .5
        assert_same_detections(b, a, box_px=1.0, what=path)


def test_folder_glob_list_and_image_sources(weights, images, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(f"imgs/{s}.jpg" for s in STEMS[:2]) + "\n")
    assert [source_kind(str(x)) for x in (images, images / "*.jpg", listing, images / f"{STEMS[0]}.jpg")] == \
        ["folder", "glob", "list", "image"]
    save_dir, res = _run(weights, str(images / "*.jpg"), tmp_path, save_crop=True, hide_conf=True)
    assert len(res) == 4 and sorted(p.name for p in save_dir.glob("*.jpg")) == [f"{s}.jpg" for s in STEMS]
    assert list((save_dir / "crops").rglob("*.jpg"))
    _, res_list = _run(weights, listing, tmp_path, nosave=True)
    assert [Path(r[0]).name for r in res_list] == [f"{s}.jpg" for s in STEMS[:2]]


def _make_video(path: Path, image: Path, n: int = 5) -> Path:
    im = cv2.resize(cv2.imread(str(image)), (320, 240))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    assert writer.isOpened()
    for k in range(n):
        writer.write(cv2.flip(im, 1) if k % 2 else im)
    writer.release()
    return path


@pytest.mark.slow
def test_video_and_stream_sources(weights, images, tmp_path):
    video = _make_video(tmp_path / "clip.avi", images / f"{STEMS[0]}.jpg")
    save_dir, res = _run(weights, video, tmp_path, vid_stride=2, save_txt=True)
    assert [r[1] for r in res] == [1, 2]  # frames 2 and 4 of 5 with stride 2 (as YOLOv5 grabs them)
    assert (save_dir / "clip.mp4").is_file() and len(list((save_dir / "labels").glob("clip_*.txt"))) == 2
    _, streamed = _run(weights, f"file://{video}", tmp_path, nosave=True)
    frames, kind = iter_source(f"file://{video}")
    assert kind == "stream" and len(list(frames)) == 5 == len(streamed)
    _, direct = _run(weights, video, tmp_path, nosave=True)
    for (_, _, a), (_, _, b) in zip(direct, streamed):
        np.testing.assert_array_equal(a, b)


def test_source_errors(weights, tmp_path):
    with pytest.raises(OSError, match="cannot open webcam 97"):
        list(iter_source("97")[0])
    with pytest.raises(FileNotFoundError, match="no such file"):
        source_kind(str(tmp_path / "nothing.jpg"))
    (tmp_path / "notes.doc").write_text("x")
    with pytest.raises(ValueError, match="unsupported file type"):
        source_kind(str(tmp_path / "notes.doc"))
    with pytest.raises(ValueError, match="--cfg"):
        detect.run(tmp_path / "yolov3.weights", tmp_path, project=str(tmp_path / "runs"))


def test_darknet_weights_through_detect_py(tmp_path):
    """detect.py --weights yolov4-tiny.weights --cfg yolov4-tiny.cfg --darknet-mode gives Darknet's own detections
    on dog.jpg."""
    ref = shared_path("darknet", "reference", "yolov4-tiny", "resize", "detections.txt")
    rows = [line.split("|") for line in ref.read_text().splitlines() if not line.startswith("#") and line.strip()]
    expected = sorted((int(a.split()[0]), float(a.split()[1]), *map(float, b.split())) for a, b in rows)
    _, results = detect.run(weights=str(shared_path("darknet", "yolov4-tiny.weights")),
                            cfg=str(shared_path("darknet", "yolov4-tiny.cfg")),
                            source=str(shared_path("darknet", "dog.jpg")), project=str(tmp_path), name="dn",
                            nosave=True, save_txt=True, darknet_mode=True)
    det = results[0][2]
    ours = sorted((int(c), float(conf), *map(float, box)) for *box, conf, c in det.tolist())
    assert [o[0] for o in ours] == [e[0] for e in expected]
    for o, e in zip(ours, expected):
        assert abs(o[1] - e[1]) < 0.01 and max(abs(a - b) for a, b in zip(o[2:], e[2:])) < 1.0
    assert (tmp_path / "dn" / "labels" / "dog.txt").read_text().count("\n") == len(expected)


def test_darknet_weights_through_the_yolov5_pipeline(tmp_path):
    """Without --darknet-mode the .weights model is one more PyTorch backend (letterbox, YOLOv5's single-label NMS):
    on dog.jpg it finds the three objects Darknet finds, each with one of Darknet's classes for that box (Darknet
    also keeps the runner-up class of the truck/car box). The letterbox (aspect kept) is not the stretched input
    Darknet trained on, so boxes move: the bicycle's overlaps Darknet's by IoU 0.6, the others by ~0.9."""
    from utils.boxes import box_iou

    ref = shared_path("darknet", "reference", "yolov4-tiny", "resize", "detections.txt")
    rows = [line.split("|") for line in ref.read_text().splitlines() if not line.startswith("#") and line.strip()]
    expected = [(int(a.split()[0]), [float(v) for v in b.split()]) for a, b in rows]
    _, results = detect.run(weights=str(shared_path("darknet", "yolov4-tiny.weights")),
                            cfg=str(shared_path("darknet", "yolov4-tiny.cfg")), imgsz=[416],
                            source=str(shared_path("darknet", "dog.jpg")), project=str(tmp_path), name="v5",
                            nosave=True, conf_thres=0.25)
    det = results[0][2]
    iou = box_iou(torch.from_numpy(det[:, :4]), torch.tensor([b for _, b in expected]))
    assert len(det) == 3 and bool((iou.max(0).values > 0.55).all())  # every Darknet box found
    for row, ious in zip(det.tolist(), iou):
        assert int(row[5]) in {c for (c, _), v in zip(expected, ious) if v > 0.55}
    with pytest.raises(ValueError, match="--darknet-mode needs Darknet .weights"):
        detect.run(weights=str(shared_path("weights", "yolov5n.pt")), source=str(shared_path("darknet", "dog.jpg")),
                   project=str(tmp_path), darknet_mode=True)


def test_prefetch_keeps_order_and_reraises():
    """The accelerator path's background loader: items in order, a loader error raised in the consumer."""
    assert list(detect.prefetch(iter(range(40)), depth=3)) == list(range(40))

    def failing():
        yield 1
        raise OSError("disk gone")

    got = detect.prefetch(failing())
    assert next(got) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(got)
