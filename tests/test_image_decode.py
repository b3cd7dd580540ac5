"""utils/data/image_decode.py: the loader's fast JPEG decode gives OpenCV's pixels (EXIF orientation included), and its
reduced-size decode a stated, small difference."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.shared_data import shared_path
from utils.data.files import list_image_files
from utils.data.image_decode import decode_image, jpeg_orientation, reduced_min_size

simplejpeg = pytest.importorskip("simplejpeg", reason="simplejpeg is not installed (requirements-deploy.txt)")


def _coco(n: int) -> list[str]:
    return list_image_files(shared_path("datasets", "coco128", "images", "train2017"))[:n]


def test_full_decode_equals_opencv():
    for f in _coco(16):
        im, hw = decode_image(f)
        ref = cv2.imread(f, cv2.IMREAD_COLOR)
        assert hw == ref.shape[:2] and np.array_equal(im, ref), f


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_as_opencv(tmp_path, orientation):
    """A JPEG with each EXIF orientation (written by PIL) decodes to what cv2.imread shows, full size swapped
    for the quarter turns."""
    from PIL import Image

    src = cv2.imread(_coco(1)[0])[:90, :160]  # not square: a wrong turn changes the shape
    f = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(src[:, :, ::-1]).save(f, quality=95, exif=exif)
    assert jpeg_orientation(f.read_bytes()) == orientation
    im, hw = decode_image(f)
    ref = cv2.imread(str(f), cv2.IMREAD_COLOR)
    assert hw == ref.shape[:2] and np.array_equal(im, ref)


def test_reduced_decode_difference(tmp_path):
    """An image >= 4x the target decodes at a DCT scale that keeps its long side >= 2x the target: after the loader's
    linear resize to the target its pixels differ from full decode + the same resize by 1.44 grey levels on average
    here (0.8-5.0 on six 2.5x-upscaled coco128 images at target 320; full decode + linear vs + area resizing differ
    by 1.3-8.8 on the same images). Under 4x it decodes at full size: a 2x DCT scale straight to the target changed
    the demo quick start's shapes (mAP50 0.81 / 0.91 against 0.96 / 0.97 at full size, seeds 0 / 1)."""
    big = cv2.resize(cv2.imread(_coco(1)[0]), None, fx=2.5, fy=2.5, interpolation=cv2.INTER_CUBIC)
    f = tmp_path / "big.jpg"
    cv2.imwrite(str(f), big, [cv2.IMWRITE_JPEG_QUALITY, 95])
    target = 320
    full, hw_full = decode_image(f)
    small, hw = decode_image(f, target)
    assert hw == hw_full == full.shape[:2]
    assert max(small.shape[:2]) >= 2 * target and small.shape[0] <= full.shape[0] // 2 + 1
    r = target / max(hw)
    size = (int(hw[1] * r), int(hw[0] * r))
    a = cv2.resize(full, size, interpolation=cv2.INTER_LINEAR).astype(np.int16)
    b = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR).astype(np.int16)
    assert 0 < np.abs(a - b).mean() < 3
    assert decode_image(f, max(hw) // 4 + 1)[0].shape == full.shape  # under 4x: full size
    assert reduced_min_size(960, 1280, 320) == (480, 640) and reduced_min_size(960, 1279, 320) == (0, 0)
    assert reduced_min_size(4000, 6000, 640) == (854, 1280)  # simplejpeg then picks 1/4: 1000 x 1500


def test_fallbacks(tmp_path):
    """PNGs and files without EXIF go through OpenCV / orientation 1; malformed EXIF is ignored."""
    im = cv2.imread(_coco(1)[0])
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), im)
    out, hw = decode_image(png)
    assert np.array_equal(out, im) and hw == im.shape[:2]
    assert jpeg_orientation(b"\xff\xd8\xff\xe1\x00\x10Exif\0\0MM\x00\x2a\xff\xff\xff\xff") == 1
    gray = tmp_path / "g.jpg"
    cv2.imwrite(str(gray), cv2.cvtColor(im, cv2.COLOR_BGR2GRAY))
    assert np.array_equal(decode_image(gray)[0], cv2.imread(str(gray), cv2.IMREAD_COLOR))
