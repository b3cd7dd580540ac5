"""utils/data/mosaic.py: where each tile lands, and labels that still sit on their objects' pixels.

Written against mutants that survived tests/test_augment.py (e.g. `if i == 0` -> `if i != 0` in _placement);
docs/mutation_testing.md has the list.
"""
from __future__ import annotations

import numpy as np
import pytest

from utils.data.mosaic import _placement, mosaic4


class _Centre:
    """Stands in for the generator: mosaic4 draws yc, then xc."""

    def __init__(self, yc: float, xc: float) -> None:
        self.values = [yc, xc]

    def uniform(self, low: float, high: float) -> float:
        value = self.values.pop(0)
        assert low <= value < high
        return value


# (tile, w, h) -> (canvas rectangle, source rectangle) for s = 100, centre xc = 120, yc = 80; worked out by hand
# from YOLOv5's load_mosaic: a tile touches the centre and is cut at the canvas border.
PLACEMENTS = [
    ((0, 60, 50), (60, 30, 120, 80), (0, 0, 60, 50)),
    ((0, 150, 100), (0, 0, 120, 80), (30, 20, 150, 100)),
    ((1, 100, 50), (120, 30, 200, 80), (0, 0, 80, 50)),
    ((1, 40, 120), (120, 0, 160, 80), (0, 40, 40, 120)),
    ((2, 60, 150), (60, 80, 120, 200), (0, 0, 60, 120)),
    ((2, 200, 30), (0, 80, 120, 110), (80, 0, 200, 30)),
    ((3, 100, 150), (120, 80, 200, 200), (0, 0, 80, 120)),
    ((3, 30, 40), (120, 80, 150, 120), (0, 0, 30, 40)),
]


@pytest.mark.parametrize(("tile", "canvas", "source"), PLACEMENTS)
def test_placement_rectangles(tile: tuple[int, int, int], canvas: tuple, source: tuple) -> None:
    i, w, h = tile
    a, b = _placement(i, 120, 80, w, h, 100)
    assert a == canvas and b == source
    assert a[2] - a[0] == b[2] - b[0] and a[3] - a[1] == b[3] - b[1]  # same size on both sides


def _tile(value: int, w: int, h: int, box_xyxy: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A flat tile with one object painted `value` and its normalised label (class = value)."""
    im = np.full((h, w, 3), 10, np.uint8)
    x1, y1, x2, y2 = box_xyxy
    im[y1:y2, x1:x2] = value
    label = np.array([[value, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]], np.float32)
    return im, label


def test_labels_sit_on_their_objects_in_the_canvas() -> None:
    tiles = [_tile(50, 80, 60, (10, 5, 70, 55)), _tile(100, 90, 70, (20, 10, 60, 50)),
             _tile(150, 70, 90, (5, 30, 50, 85)), _tile(200, 100, 80, (40, 20, 95, 75))]
    canvas, labels = mosaic4([t[0] for t in tiles], [t[1] for t in tiles], 100, _Centre(90.0, 110.0))
    assert canvas.shape == (200, 200, 3) and labels.shape == (4, 5)
    assert labels[:, 0].tolist() == [50, 100, 150, 200]
    for cls, x1, y1, x2, y2 in labels:
        x1, y1, x2, y2 = (int(round(v)) for v in (x1, y1, x2, y2))
        assert x2 > x1 and y2 > y1
        assert (canvas[y1:y2, x1:x2] == cls).all(), f"class {cls}: label box not on its pixels"
        painted = np.argwhere((canvas[..., 0] == cls))
        assert painted[:, 0].min() == y1 and painted[:, 0].max() == y2 - 1
        assert painted[:, 1].min() == x1 and painted[:, 1].max() == x2 - 1
    # the tiles meet at the centre (x 110, y 90): top-left tile's bottom-right pixel, bottom-right's top-left
    assert (canvas[89, 109] == tiles[0][0][-1, -1]).all() and (canvas[90, 110] == tiles[3][0][0, 0]).all()
    assert (canvas[0, 0] == 114).all()  # outside every tile: padding grey


def test_labels_are_clipped_to_the_canvas() -> None:
    big = _tile(60, 180, 160, (0, 0, 180, 160))  # the object fills the tile, which overflows the top left
    small = [_tile(90 + 10 * k, 20, 20, (5, 5, 15, 15)) for k in range(3)]
    canvas, labels = mosaic4([big[0]] + [t[0] for t in small], [big[1]] + [t[1] for t in small], 100,
                             _Centre(60.0, 70.0))
    assert labels[0].tolist() == [60, 0, 0, 70, 60]  # (-110, -100, 70, 60) clipped at 0
    assert (canvas[0:60, 0:70] == 60).all()
    assert labels[:, 1:].min() >= 0 and labels[:, 1:].max() <= 200


def test_empty_labels_keep_their_shape() -> None:
    ims = [np.zeros((40, 40, 3), np.uint8) for _ in range(4)]
    canvas, labels = mosaic4(ims, [np.zeros((0, 5), np.float32)] * 4, 50, _Centre(50.0, 50.0))
    assert canvas.shape == (100, 100, 3) and labels.shape == (0, 5)
