"""utils/data/augment.py: letterbox's defaults (auto, stride-multiple padding, resize), shear in degrees, and the
box_candidates size edge. Written against mutants that survived tests/test_augment.py (docs/mutation_testing.md).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from utils.data.augment import _perspective_matrix, box_candidates, letterbox


class _Draws:
    """Stands in for the generator: returns the given draws in order, each checked against its range."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def uniform(self, low: float, high: float) -> float:
        value = self.values.pop(0)
        assert low <= value <= high
        return value


def test_letterbox_defaults_pad_only_to_a_multiple_of_32() -> None:
    im = np.full((480, 640, 3), 7, np.uint8)
    out, ratio, pad = letterbox(im)  # auto=True: 640 x 480 already fits, 160 rows short is 5 x 32
    assert out.shape == (480, 640, 3) and ratio == (1.0, 1.0) and pad == (0.0, 0.0)
    out, _, pad = letterbox(np.full((470, 640, 3), 7, np.uint8))  # 170 rows short: 170 % 32 = 10 -> 5 + 5
    assert out.shape == (480, 640, 3) and pad == (0.0, 5.0)
    assert (out[:5] == 114).all() and (out[5:475] == 7).all() and (out[475:] == 114).all()


def test_letterbox_resizes_before_padding() -> None:
    im = np.zeros((300, 500, 3), np.uint8)
    im[:, 250:] = 200
    out, ratio, pad = letterbox(im, 320)  # r = 0.64: 320 x 192, 128 rows short = 4 x 32
    assert out.shape == (192, 320, 3) and ratio == (0.64, 0.64) and pad == (0.0, 0.0)
    assert (out[:, :150] == 0).all() and (out[:, 170:] == 200).all()


def test_shear_is_drawn_in_degrees() -> None:
    """Only shear: (x + 10, y) of the centre moves by 10 tan(ty) in y, (x, y + 10) by 10 tan(tx) in x."""
    # draws: perspective x, y; scale; angle; shear x, y; translate x, y
    M, s = _perspective_matrix((100, 200), (200, 100), _Draws(0.0, 0.0, 1.0, 0.0, 5.0, -3.0, 0.5, 0.5),
                               degrees=0, translate=0, scale=0, shear=10, perspective=0)
    assert s == 1.0
    centre, right, down = (M @ np.array([[100.0, 50.0, 1], [110.0, 50.0, 1], [100.0, 60.0, 1]]).T).T[:, :2]
    np.testing.assert_allclose(centre, [100.0, 50.0])
    np.testing.assert_allclose(right - centre, [10.0, 10 * math.tan(math.radians(-3.0))])
    np.testing.assert_allclose(down - centre, [10 * math.tan(math.radians(5.0)), 10.0])


@pytest.mark.parametrize(("w", "h", "keep"), [(2.0, 10.0, False), (10.0, 2.0, False), (2.01, 10.0, True),
                                              (10.0, 2.01, True)])
def test_box_candidates_need_more_than_wh_thr_pixels(w: float, h: float, keep: bool) -> None:
    before = np.array([[0.0], [0.0], [w], [h]])
    assert box_candidates(before, before).tolist() == [keep]
