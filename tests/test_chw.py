"""utils/data/chw.py: OpenCV's split gives exactly NumPy's CHW RGB copy, for contiguous images and flipped views."""
from __future__ import annotations

import numpy as np

from utils.data.augment import flip_lr, flip_ud
from utils.data.chw import chw_rgb


def _numpy(im: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(im.transpose(2, 0, 1)[::-1])


def test_equals_numpy_for_images_and_the_loaders_flipped_views() -> None:
    rng = np.random.default_rng(0)
    im = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    before = im.copy()
    labels = np.zeros((0, 5), np.float32)
    lr, ud = flip_lr(im, labels)[0], flip_ud(im, labels)[0]
    views = {"contiguous": im, "left-right": lr, "up-down": ud, "both": flip_ud(lr, labels)[0],
             "cropped": im[5:40, 3:50]}
    for name, view in views.items():
        got = chw_rgb(view)
        assert got.flags.c_contiguous and got.shape == (3, *view.shape[:2]), name
        np.testing.assert_array_equal(got, _numpy(view), err_msg=name)
    np.testing.assert_array_equal(im, before)  # the source of the views is left as it was


def test_other_dtypes_take_the_numpy_copy() -> None:
    im = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    np.testing.assert_array_equal(chw_rgb(im), _numpy(im))
