"""utils/nms_numpy.py: threshold and IoU edges, agnostic NMS, the max_nms cut, defaults and argument checks.

Written against mutants that survived tests/test_nms_numpy.py (docs/mutation_testing.md).
"""
from __future__ import annotations

import numpy as np
import pytest

from utils.nms_numpy import greedy_nms, non_max_suppression_numpy

# three disjoint boxes, two classes; scores obj * cls are exact in binary: 0.25, 0.375, 0.5
ROWS = [[20.0, 20.0, 10.0, 10.0, 0.5, 0.5, 0.0],
        [60.0, 20.0, 10.0, 10.0, 0.75, 0.0, 0.5],
        [100.0, 20.0, 10.0, 10.0, 1.0, 0.5, 0.25]]


def _pred(rows: list[list[float]]) -> np.ndarray:
    return np.array([rows], dtype=np.float32)


def _scores(out: list[np.ndarray]) -> list[float]:
    return sorted(out[0][:, 4].tolist(), reverse=True)


def test_a_score_equal_to_conf_thres_is_dropped() -> None:
    assert _scores(non_max_suppression_numpy(_pred(ROWS), conf_thres=0.25)) == [0.5, 0.375]
    assert _scores(non_max_suppression_numpy(_pred(ROWS), conf_thres=0.2499)) == [0.5, 0.375, 0.25]
    # objectness equal to the threshold drops the row before its class scores are looked at
    assert _scores(non_max_suppression_numpy(_pred(ROWS), conf_thres=0.5)) == []


def test_without_objectness_the_class_scores_decide() -> None:
    """[cx, cy, w, h, cls_0, cls_1] rows: the best class score is the confidence, and it alone is thresholded."""
    rows = [[20.0, 20.0, 10.0, 10.0, 0.25, 0.75], [60.0, 20.0, 10.0, 10.0, 0.5, 0.125],
            [100.0, 20.0, 10.0, 10.0, 0.125, 0.25]]
    out = non_max_suppression_numpy(_pred(rows), conf_thres=0.25, has_objectness=False)[0]
    assert out[:, 4].tolist() == [0.75, 0.5] and out[:, 5].tolist() == [1.0, 0.0]
    assert out[0, :4].tolist() == [15.0, 15.0, 25.0, 25.0]


def test_iou_equal_to_the_threshold_keeps_both() -> None:
    """Boxes (0,0)-(4,4) and (0,2)-(4,6): IoU 8 / 24 = 1/3; suppressed only above the threshold."""
    boxes = np.array([[0, 0, 4, 4], [0, 2, 4, 6]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    third = float(np.float32(8) / np.float32(24))
    assert greedy_nms(boxes, scores, third).tolist() == [0, 1]
    assert greedy_nms(boxes, scores, third - 1e-6).tolist() == [0]


def test_agnostic_suppresses_across_classes_and_is_off_by_default() -> None:
    """Two overlapping boxes of classes 0 and 40 (far apart, so no small class offset could separate them)."""
    cls0, cls40 = [0.0] * 41, [0.0] * 41
    cls0[0], cls40[40] = 1.0, 1.0
    rows = [[20.0, 20.0, 10.0, 10.0, 0.9, *cls0], [21.0, 20.0, 10.0, 10.0, 0.8, *cls40]]
    assert _scores(non_max_suppression_numpy(_pred(rows))) == pytest.approx([0.9, 0.8])
    assert _scores(non_max_suppression_numpy(_pred(rows), agnostic=False)) == pytest.approx([0.9, 0.8])
    assert _scores(non_max_suppression_numpy(_pred(rows), agnostic=True)) == pytest.approx([0.9])


def test_max_nms_keeps_the_best_candidates_before_nms() -> None:
    out = non_max_suppression_numpy(_pred(ROWS), conf_thres=0.1, max_nms=2)
    assert _scores(out) == [0.5, 0.375]


def test_max_det_default_is_300() -> None:
    rows = [[20.0 * (k % 30) + 10, 20.0 * (k // 30) + 10, 10.0, 10.0, 0.9, 1.0] for k in range(301)]
    assert len(non_max_suppression_numpy(_pred(rows))[0]) == 300
    assert len(non_max_suppression_numpy(_pred(rows), max_det=301)[0]) == 301


def test_threshold_edges_are_accepted_and_outside_values_refused() -> None:
    assert len(non_max_suppression_numpy(_pred(ROWS), conf_thres=0.0, iou_thres=0.0)[0]) == 3
    assert len(non_max_suppression_numpy(_pred(ROWS), conf_thres=1.0, iou_thres=1.0)[0]) == 0
    for conf, iou in ((-0.01, 0.5), (1.01, 0.5), (0.5, -0.01), (0.5, 1.01)):
        with pytest.raises(ValueError, match="must be in"):
            non_max_suppression_numpy(_pred(ROWS), conf_thres=conf, iou_thres=iou)


def test_one_class_is_enough() -> None:
    """(B, N, 5 + 1) rows with objectness and (B, N, 4 + 1) without are valid; one column fewer is not."""
    one = _pred([[20.0, 20.0, 10.0, 10.0, 0.9, 1.0]])
    assert len(non_max_suppression_numpy(one)[0]) == 1
    assert len(non_max_suppression_numpy(one[..., [0, 1, 2, 3, 4]], has_objectness=False)[0]) == 1
    with pytest.raises(ValueError, match="5 \\+ nc"):
        non_max_suppression_numpy(one[..., :5])
