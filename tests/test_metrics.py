"""Metrics against the official YOLOv5 v7.0 AP computation (metrics_case*.pt) and hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.shared_data import shared_path
from utils.metrics import ConfusionMatrix, ap_per_class, compute_ap, fitness, process_batch, smooth

OUTPUT_KEYS = ("tp", "fp", "p", "r", "f1", "ap", "ap_class")


@pytest.mark.parametrize("name", ["metrics_case.pt", "metrics_case_bs16.pt"])
def test_ap_per_class_reproduces_val_run(name: str) -> None:
    case = torch.load(shared_path("reference", "yolov5", name), weights_only=True)
    inputs, expected = case["ap_inputs"], case["ap_outputs"]
    out = ap_per_class(inputs["tp"].numpy(), inputs["conf"].numpy(), inputs["pred_cls"].numpy(),
                       inputs["target_cls"].numpy())
    for key, got in zip(OUTPUT_KEYS, out):
        want = expected[key].numpy()
        assert got.shape == want.shape, key
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=key)
    p, r, ap = out[2], out[3], out[5]
    overall = case["overall"]
    assert p.mean() == pytest.approx(overall["P"], abs=1e-9)
    assert r.mean() == pytest.approx(overall["R"], abs=1e-9)
    assert ap[:, 0].mean() == pytest.approx(overall["mAP50"], abs=1e-9)
    assert ap.mean() == pytest.approx(overall["mAP50_95"], abs=1e-9)


def test_per_class_table_reproduces_val_run() -> None:
    """The per-class table of metrics_case.json (YOLOv5 v7.0's val.py rows) from the same AP inputs, through the
    Evaluator that writes metrics.json: the same classes, names and instances, P, R, AP50, AP50-95 to 1e-6."""
    import json

    import yaml

    from utils.evaluator import Evaluator

    case = torch.load(shared_path("reference", "yolov5", "metrics_case.pt"), weights_only=True)
    table = json.loads(shared_path("reference", "yolov5", "metrics_case.json").read_text())["per_class"]
    names = yaml.safe_load(shared_path("datasets", "coco128", "coco128.yaml").read_text())["names"]
    ev = Evaluator(nc=80, names=list(names.values()) if isinstance(names, dict) else names)
    ev.stats = [tuple(case["ap_inputs"][k] for k in ("tp", "conf", "pred_cls", "target_cls"))]
    ours = {row["class"]: row for row in ev.result().per_class}
    assert sorted(ours) == [row["class"] for row in table] and len(table) == 71
    for want in table:
        got = ours[want["class"]]
        assert (got["name"], got["instances"]) == (want["name"], want["instances"])
        for key in ("P", "R", "AP50", "AP50_95"):
            assert got[key] == pytest.approx(want[key], abs=1e-6), (want["name"], key)


def test_process_batch_examples() -> None:
    case = torch.load(shared_path("reference", "yolov5", "metrics_case.pt"), weights_only=True)
    for ex in case["process_batch_examples"]:
        got = process_batch(ex["detections"], ex["labels"], ex["iouv"])
        assert got.dtype == torch.bool and torch.equal(got, ex["correct"])


def test_compute_ap_hand_values() -> None:
    # perfect detector: the sentinel (recall 1, precision 0) makes the last 0.01 step a ramp -> 0.995
    assert compute_ap(np.array([0.5, 1.0]), np.array([1.0, 1.0]))[0] == pytest.approx(0.995)
    # one TP then one FP with a single label: same envelope
    assert compute_ap(np.array([1.0, 1.0]), np.array([1.0, 0.5]))[0] == pytest.approx(0.995)
    # recall 0.5 at precision 1, never more: 1 on [0, 0.5], then a ramp down to 0 at recall 1
    ap, mpre, mrec = compute_ap(np.array([0.5]), np.array([1.0]))
    assert ap == pytest.approx(0.5 + 0.25)
    assert mrec.tolist() == [0.0, 0.5, 1.0] and mpre.tolist() == [1.0, 1.0, 0.0]
    # precision envelope: a later higher precision lifts the earlier points
    _, mpre, _ = compute_ap(np.array([0.25, 0.5, 0.75]), np.array([0.5, 0.4, 0.6]))
    assert mpre.tolist() == [1.0, 0.6, 0.6, 0.6, 0.0]


def test_ap_per_class_hand_case() -> None:
    # class 0: 2 labels; predictions (conf) 0.9 TP, 0.8 FP, 0.7 TP -> recall 0.5,0.5,1 precision 1,.5,.667
    # class 1: 1 label; no prediction -> all zeros; class 2 predicted but never labelled -> not reported
    tp = np.array([[1], [0], [1], [1]], dtype=bool)
    conf = np.array([0.9, 0.8, 0.7, 0.95], dtype=np.float32)
    pred_cls = np.array([0, 0, 0, 2], dtype=np.float32)
    target_cls = np.array([0, 0, 1], dtype=np.float32)
    tp_n, fp_n, p, r, f1, ap, classes = ap_per_class(tp, conf, pred_cls, target_cls)
    assert classes.tolist() == [0, 1]
    x = np.linspace(0, 1, 101)
    want = np.trapezoid(np.interp(x, [0, 0.5, 0.5, 0.5, 1, 1], [1, 1, 2 / 3, 2 / 3, 2 / 3, 0]), x)
    assert ap[0, 0] == pytest.approx(want, abs=1e-12)
    assert ap[1, 0] == 0 and p[1] == 0 and r[1] == 0
    # smoothed mean F1 peaks at low confidence (<0.7): class 0 then has P 2/3, R 1
    assert p[0] == pytest.approx(2 / 3) and r[0] == pytest.approx(1.0)
    assert tp_n.tolist() == [2.0, 0.0] and fp_n.tolist() == [1.0, 0.0]


def test_ap_per_class_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="same n predictions"):
        ap_per_class(np.zeros((3, 10), bool), np.zeros(2), np.zeros(3), np.zeros(1))


def test_process_batch_hand_case() -> None:
    iouv = torch.linspace(0.5, 0.95, 10)
    labels = torch.tensor([[0.0, 0, 0, 10, 10], [1.0, 20, 20, 30, 30]])
    detections = torch.tensor([
        [0.0, 0, 10, 10, 0.9, 0],  # exact match of label 0
        [0.0, 0, 10, 8, 0.8, 0],  # IoU 0.8 with label 0, but label 0 is taken by the exact box
        [20.0, 20, 30, 30, 0.7, 0],  # right place, wrong class
        [20.0, 20, 30, 35, 0.6, 1],  # IoU 100/150 = 0.667 with label 1
    ])
    correct = process_batch(detections, labels, iouv)
    assert correct[0].all() and not correct[1].any() and not correct[2].any()
    assert correct[3].tolist() == (iouv <= 2 / 3).tolist()
    with pytest.raises(ValueError, match="labels"):
        process_batch(detections, labels[:, :4], iouv)


def test_confusion_matrix_counts() -> None:
    cm = ConfusionMatrix(nc=2, conf=0.25, iou_thres=0.45)
    labels = torch.tensor([[0.0, 0, 0, 10, 10], [1.0, 20, 20, 30, 30], [1.0, 50, 50, 60, 60]])
    detections = torch.tensor([
        [0.0, 0, 10, 10, 0.9, 0],  # correct class 0
        [20.0, 20, 30, 30, 0.8, 0],  # label 1 predicted as class 0
        [80.0, 80, 90, 90, 0.7, 1],  # false positive (background)
        [50.0, 50, 60, 60, 0.1, 1],  # below conf: ignored, so label 2 is missed
    ])
    cm.process_batch(detections, labels)
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 0, 1], [0, 1, 0]]
    cm.process_batch(None, torch.tensor([0.0]))  # image with no detections: its label is missed
    assert cm.matrix[2, 0] == 1
    tp, fp = cm.tp_fp()
    assert tp.tolist() == [1, 0] and fp.tolist() == [1, 1]


def test_confusion_matrix_false_positives_without_any_match() -> None:
    cm = ConfusionMatrix(nc=3)
    cm.process_batch(torch.tensor([[0.0, 0, 5, 5, 0.9, 2]]), torch.tensor([[1.0, 50, 50, 60, 60]]))
    assert cm.matrix[2, 3] == 1 and cm.matrix[3, 1] == 1 and cm.matrix.sum() == 2


def test_fitness_and_smooth() -> None:
    x = np.array([[0.5, 0.4, 0.6, 0.3], [1.0, 1.0, 0.2, 0.1]])
    np.testing.assert_allclose(fitness(x), [0.06 + 0.27, 0.02 + 0.09])
    y = np.arange(20, dtype=float)
    s = smooth(y, 0.1)  # width 3 box filter, edges padded
    assert len(s) == 20 and s[0] == pytest.approx(1 / 3) and s[5] == pytest.approx(5.0)


def test_plots_written(tmp_path) -> None:
    tp = np.array([[1, 1], [0, 0], [1, 0], [1, 1]], dtype=bool)
    conf = np.array([0.9, 0.8, 0.7, 0.95], dtype=np.float32)
    pred_cls = np.array([0, 0, 0, 1], dtype=np.float32)
    ap_per_class(tp, conf, pred_cls, np.array([0, 0, 1], np.float32), plot=True, save_dir=tmp_path,
                 names={0: "cat", 1: "dog"}, prefix="val_")
    cm = ConfusionMatrix(nc=2)
    cm.process_batch(torch.tensor([[0.0, 0, 10, 10, 0.9, 0]]), torch.tensor([[1.0, 0, 0, 10, 10]]))
    cm.plot(tmp_path, names=["cat", "dog"])
    for name in ("val_PR_curve", "val_F1_curve", "val_P_curve", "val_R_curve", "confusion_matrix"):
        path = tmp_path / f"{name}.png"
        assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
