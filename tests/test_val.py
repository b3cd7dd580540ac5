"""val.py: official YOLOv5 figures on coco128, pycocotools via --save-json, the training entry point."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import val
from tests.shared_data import shared_path
from utils.paths import increment_path

IMAGES = ("000000000009", "000000000025", "000000000030", "000000000034")


def make_small_dataset(tmp_path: Path, stems=IMAGES) -> Path:
    """A 4-image copy of coco128 (images, labels, data YAML) in tmp_path; returns the YAML path."""
    root = shared_path("datasets", "coco128")
    for sub, ext in (("images", ".jpg"), ("labels", ".txt")):
        (tmp_path / sub / "train2017").mkdir(parents=True)
        for s in stems:
            shutil.copy(root / sub / "train2017" / f"{s}{ext}", tmp_path / sub / "train2017")
    names = yaml.safe_load((root / "coco128.yaml").read_text())["names"]
    cfg = {"path": str(tmp_path), "train": "images/train2017", "val": "images/train2017", "names": names}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "data.yaml"


def test_increment_path(tmp_path):
    assert increment_path(tmp_path / "exp", mkdir=True) == tmp_path / "exp"
    assert increment_path(tmp_path / "exp", mkdir=True) == tmp_path / "exp2"
    (tmp_path / "exp7").mkdir()
    assert increment_path(tmp_path / "exp") == tmp_path / "exp8"
    assert increment_path(tmp_path / "exp", exist_ok=True) == tmp_path / "exp"


# Per-class tolerances. AP50 / AP50-95 depend only on the order of the detections: measured equal (0.0). A class's
# P and R are read off its precision/recall curves at one confidence (the max mean F1), interpolated between the
# detections' confidences, which are float32 model outputs (~1e-6 apart from the official ones): measured up to
# 2.2e-5 (cell phone P). Their means, the overall P and R, agree to 5e-7.
TABLE_ATOL = {"AP50": 1e-6, "AP50_95": 1e-6, "P": 1e-4, "R": 1e-4}


@pytest.mark.slow
def test_official_figures_coco128_bs32_and_pycocotools(tmp_path):
    """The one full run (coco128, 640, batch 32, official yolov5n, --save-json).

    Against YOLOv5 v7.0 (metrics_case.json) at its own precision: P, R, mAP50, mAP50-95 to 1e-6, every row of
    the per-class table (classes, names, instances exact; TABLE_ATOL) and the number of predictions. pycocotools
    on the same detections: the figures the README and docs/val_metrics.md state, 0.5678 / 0.3653, to their 4
    decimals."""
    case = json.loads(shared_path("reference", "yolov5", "metrics_case.json").read_text())
    ref = case["overall"]
    data = shared_path("datasets", "coco128", "coco128.yaml")
    weights = shared_path("weights", "yolov5n.pt")
    (p, r, map50, map_, *losses), maps, speeds = val.run(data, weights, batch_size=32, imgsz=640, device="cpu",
                                                        save_json=True, project=tmp_path, plots=False)
    for key, got in (("P", p), ("R", r), ("mAP50", map50), ("mAP50_95", map_)):
        assert got == pytest.approx(ref[key], abs=1e-6), key
    assert losses == [0.0, 0.0, 0.0] and maps.shape == (80,) and len(speeds) == 3
    metrics = json.loads((tmp_path / "exp" / "metrics.json").read_text())
    assert metrics["images"] == ref["images"] == 128 and metrics["instances"] == ref["instances"] == 929
    ours = {row["class"]: row for row in metrics["per_class"]}
    assert sorted(ours) == sorted(row["class"] for row in case["per_class"]) and len(ours) == 71
    for want in case["per_class"]:
        got = ours[want["class"]]
        assert got["name"] == want["name"] and got["instances"] == want["instances"], want["name"]
        for key, atol in TABLE_ATOL.items():
            assert got[key] == pytest.approx(want[key], abs=atol), (want["name"], key)
    preds = json.loads((tmp_path / "exp" / "yolov5n_predictions.json").read_text())
    assert {d["category_id"] for d in preds} <= set(range(1, 91)) and len(preds) == case["n_predictions"]
    coco = metrics["pycocotools"]
    assert (round(coco["mAP50"], 4), round(coco["mAP50_95"], 4)) == (0.5678, 0.3653)  # README.md, val_metrics.md


@pytest.mark.slow
def test_run_with_model_loss_and_outputs(tmp_path):
    """Training entry point: a given model is used as is, val losses come from its raw outputs."""
    from models import load_model
    from utils.hyp import load_hyp
    from utils.loss import ComputeLoss, scale_loss_hyp

    data = make_small_dataset(tmp_path)
    model = load_model(shared_path("weights", "yolov5n.pt")).train()
    hyp = scale_loss_hyp(load_hyp("data/hyps/hyp.scratch-low.yaml"), nl=3, nc=80, imgsz=320)
    loss = ComputeLoss(model.detect, hyp)
    results, maps, speeds = val.run(data, model=model, batch_size=2, imgsz=320, compute_loss=loss,
                                    save_dir=tmp_path / "val", save_txt=True, save_conf=True, plots=True)
    assert model.training, "the model's training mode must be restored"
    assert len(results) == 7 and maps.shape == (80,)
    assert 0 < results[3] <= results[2] <= 1 and all(x > 0 for x in results[4:])
    rows = [ln.split() for f in (tmp_path / "val" / "labels").glob("*.txt") for ln in f.read_text().splitlines()]
    assert rows and all(len(r) == 6 for r in rows)
    assert (tmp_path / "val" / "PR_curve.png").is_file() and (tmp_path / "val" / "metrics.json").is_file()
    assert list((tmp_path / "val").glob("confusion_matrix*.png"))


class _SlowClock:
    """time.time() for utils.nms that advances 100 s per call: every NMS call looks as if it ran past its limit."""

    def __init__(self) -> None:
        self.t = 0.0

    def time(self) -> float:
        self.t += 100.0
        return self.t


def test_figures_do_not_depend_on_cpu_speed(tmp_path, monkeypatch):
    """val.py must not drop images whose NMS ran long (a busy CPU): the same figures with a clock that makes
    every NMS call overrun NMS's default time limit (0.5 + 0.05 * batch size s)."""
    import utils.nms

    data, weights = make_small_dataset(tmp_path), shared_path("weights", "yolov5n.pt")
    kw = dict(imgsz=320, batch_size=4, project=tmp_path / "runs", plots=False)
    fast = val.run(data, weights, **kw)[0]
    monkeypatch.setattr(utils.nms, "time", _SlowClock())
    slow = val.run(data, weights, **kw)[0]
    assert fast[2] > 0.3 and slow == fast


@pytest.mark.slow
def test_val_cli_single_cls_and_errors(tmp_path, caplog):
    data = make_small_dataset(tmp_path)
    weights = shared_path("weights", "yolov5n.pt")
    with caplog.at_level("INFO", logger="yolo.val"):
        val.main(["--weights", str(weights), "--data", str(data), "--img", "320", "--batch", "4",
                  "--project", str(tmp_path / "runs"), "--verbose"])
    text = caplog.text
    assert "mAP50-95" in text and "Speed:" in text and "zebra" in text
    res, maps, _ = val.run(data, weights, imgsz=320, batch_size=4, single_cls=True, project=tmp_path / "runs",
                           plots=False)
    assert maps.shape == (1,) and res[2] > 0
    with pytest.raises(ValueError, match="task"):
        val.run(data, weights, task="bogus")
    with pytest.raises(FileNotFoundError, match="weights not found"):
        val.run(data, tmp_path / "missing.pt", project=tmp_path / "runs")


def test_evaluator_matches_native_space(tmp_path):
    """Predictions equal to the labels (after undoing the letterbox) are all correct; a stray one is not."""
    from utils.evaluator import Evaluator

    ev = Evaluator(nc=3, names=["a", "b", "c"])
    shapes = [((100, 200), ((0.5, 0.5), (0.0, 25.0)))]  # 100x200 image letterboxed to 100x100 (pad 25)
    targets = torch.tensor([[0, 1, 50.0, 50.0, 20.0, 10.0], [0, 2, 30.0, 40.0, 10.0, 10.0]])
    preds = [torch.tensor([[40.0, 45.0, 60.0, 55.0, 0.9, 1], [25.0, 35.0, 35.0, 45.0, 0.8, 2],
                           [0.0, 30.0, 10.0, 40.0, 0.1, 2]])]
    ev.update(preds, targets, (100, 100), ["x.jpg"], shapes)
    res = ev.result()
    # 101-point interpolation puts the sentinel (recall 1, precision 0) on the last point: a perfect class is 0.995
    assert res.map50 == pytest.approx(0.995, abs=1e-9) and res.map == pytest.approx(0.995, abs=1e-9)
    assert res.nt.tolist() == [0, 1, 1] and res.seen == 1
    tp = ev.ap_inputs()[0]
    assert tp[:, 0].tolist() == [True, True, False] and np.all(tp[:2])


@pytest.mark.slow
def test_test_time_augmentation(tmp_path):
    """--augment: flipped and rescaled passes are mapped back, so the best boxes agree with the plain pass."""
    from models import load_model
    from utils.boxes import box_iou
    from utils.nms import non_max_suppression

    model = load_model(shared_path("weights", "yolov5n.pt"))
    x = torch.load(shared_path("reference", "yolov5", "yolov5n_forward.pt"), weights_only=True)["input_640"]
    with torch.no_grad():
        plain = non_max_suppression(model(x), 0.25, 0.45)[0]
        tta_out, raw = model(x, augment=True)
        tta = non_max_suppression(tta_out, 0.25, 0.45)[0]
    assert raw is None and tta_out.shape[0] == 1 and tta_out.shape[1] > model(x)[0].shape[1]
    assert len(plain) and len(tta)
    top = plain[:2]  # the two confident ones (bowl 0.50, broccoli 0.48); the 0.32 donut may legitimately move
    iou = box_iou(top[:, :4], tta[:, :4])
    same_class = top[:, 5:6] == tta[:, 5][None]
    assert ((iou > 0.6) & same_class).any(1).all(), (plain, tta)  # found again at the same place
    data = make_small_dataset(tmp_path)
    res, _, _ = val.run(data, shared_path("weights", "yolov5n.pt"), imgsz=320, batch_size=4, augment=True,
                        project=tmp_path / "runs", plots=False)
    base, _, _ = val.run(data, shared_path("weights", "yolov5n.pt"), imgsz=320, batch_size=4,
                         project=tmp_path / "runs", plots=False)
    assert res[2] > 0.5 * base[2] > 0
