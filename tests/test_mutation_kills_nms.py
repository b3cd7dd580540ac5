"""utils/nms.py: threshold edges, the max_nms cut, empty a-priori labels and the default time limit.

Written against mutants that survived tests/test_nms.py (docs/mutation_testing.md).
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import utils.nms as nms_mod
from utils.nms import non_max_suppression


def _pred(rows: list[list[float]], bs: int = 1) -> torch.Tensor:
    """(bs, n, 5 + nc) from [cx, cy, w, h, obj, cls...] rows, the same rows in every image."""
    return torch.tensor(rows).repeat(bs, 1, 1)


# three disjoint boxes, two classes; scores obj * cls are exact in binary: 0.25, 0.375, 0.5
ROWS = [[20.0, 20.0, 10.0, 10.0, 0.5, 0.5, 0.0],
        [60.0, 20.0, 10.0, 10.0, 0.75, 0.0, 0.5],
        [100.0, 20.0, 10.0, 10.0, 1.0, 0.5, 0.25]]


@pytest.mark.parametrize("multi_label", [False, True])
def test_a_score_equal_to_conf_thres_is_dropped(multi_label: bool) -> None:
    out = non_max_suppression(_pred(ROWS), conf_thres=0.25, iou_thres=0.45, multi_label=multi_label)[0]
    assert 0.25 not in out[:, 4].tolist()
    assert sorted(out[:, 4].tolist(), reverse=True) == [0.5, 0.375]
    below = non_max_suppression(_pred(ROWS), conf_thres=0.2499, iou_thres=0.45, multi_label=multi_label)[0]
    extra = [0.25] if multi_label else []  # the last box's second class scores 1.0 * 0.25 too
    assert sorted(below[:, 4].tolist(), reverse=True) == [0.5, 0.375, 0.25] + extra


def test_threshold_edges_are_accepted_and_outside_values_refused() -> None:
    assert len(non_max_suppression(_pred(ROWS), conf_thres=0.0, iou_thres=0.0)[0]) == 3
    assert len(non_max_suppression(_pred(ROWS), conf_thres=1.0, iou_thres=1.0)[0]) == 0
    for conf, iou in ((-0.01, 0.5), (1.01, 0.5), (0.5, -0.01), (0.5, 1.01)):
        with pytest.raises(ValueError):
            non_max_suppression(_pred(ROWS), conf_thres=conf, iou_thres=iou)


def test_max_nms_keeps_the_most_confident_candidates() -> None:
    # class order (1, 0, 1) differs from confidence order (0.5, 0.375, 0.25 after obj * cls)
    rows = [[20.0, 20.0, 10.0, 10.0, 0.5, 0.0, 0.5],
            [60.0, 20.0, 10.0, 10.0, 1.0, 0.5, 0.0],
            [100.0, 20.0, 10.0, 10.0, 0.75, 0.0, 0.5]]
    out = non_max_suppression(_pred(rows), conf_thres=0.1, iou_thres=0.45, max_nms=2)[0]
    assert out[:, 4].tolist() == [0.5, 0.375] and out[:, 5].tolist() == [0.0, 1.0]


def test_empty_a_priori_labels_change_nothing() -> None:
    pred = _pred(ROWS, bs=2)
    plain = non_max_suppression(pred, 0.1, 0.45)
    with_empty = non_max_suppression(pred, 0.1, 0.45, labels=[torch.zeros(0, 5), torch.zeros(0, 5)])
    assert all(torch.equal(a, b) for a, b in zip(plain, with_empty))


def test_default_time_limit_is_half_a_second_plus_50ms_per_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """bs = 4: limit 0.7 s. A clock that advances 0.3 s per reading stops after the third image."""
    ticks = iter(0.3 * k for k in range(100))
    monkeypatch.setattr(nms_mod, "time", SimpleNamespace(time=lambda: next(ticks)))
    out = non_max_suppression(_pred(ROWS, bs=4), 0.1, 0.45)
    assert [len(o) for o in out] == [3, 3, 3, 0]
    ticks = iter(0.3 * k for k in range(100))
    out = non_max_suppression(_pred(ROWS, bs=8), 0.1, 0.45)  # limit 0.9 s: stops after the fourth image
    assert [len(o) for o in out] == [3, 3, 3, 3, 0, 0, 0, 0]
