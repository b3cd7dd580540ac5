"""Data pipeline behaviours not covered elsewhere: odd image formats, EXIF rotation, image caches,
DDP sampling, mosaic switched off (--close-mosaic) and scan summaries of mixed folders."""
from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.distributed as dist
from PIL import Image, ImageOps
from torch.utils.data import DistributedSampler

from tests.shared_data import shared_path
from utils.data.augment import PAD_COLOR
from utils.boxes import xywhn2xyxy
from utils.data.dataloaders import LoadImagesAndLabels, create_dataloader
from utils.hyp import load_hyp
from utils.data.image_check import read_image

HYP_LOW = "data/hyps/hyp.scratch-low.yaml"
W, H = 200, 120  # synthetic images: 200 wide, 120 high
BOX = (50, 30, 110, 90)  # pixel x1, y1, x2, y2 of the drawn object
BOX_ROW = "1 0.4 0.5 0.3 0.5\n"  # the same box as a YOLO label row


def _dirs(root: Path) -> tuple[Path, Path]:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    return root / "images", root / "labels"


def _copy_coco(root: Path, n: int) -> Path:
    """First n coco128 images that have labels, copied into root/images and root/labels; returns images dir."""
    src = shared_path("datasets", "coco128")
    ims, lbs = _dirs(root)
    picked = [p for p in sorted((src / "images" / "train2017").glob("*.jpg"))
              if (src / "labels" / "train2017" / f"{p.stem}.txt").exists()][:n]
    for p in picked:
        shutil.copy(p, ims / p.name)
        shutil.copy(src / "labels" / "train2017" / f"{p.stem}.txt", lbs / f"{p.stem}.txt")
    return ims


def _box_pixel(im: torch.Tensor, t: torch.Tensor) -> np.ndarray:
    """RGB value at the centre of the (single) target box of a returned sample."""
    h, w = im.shape[-2:]
    x1, y1, x2, y2 = xywhn2xyxy(t[:1, 2:6].numpy().astype(np.float64), w, h)[0]
    return im[:, int((y1 + y2) / 2), int((x1 + x2) / 2)].numpy()


def _odd_format_images(ims: Path, lbs: Path) -> dict[str, tuple[int, int, int]]:
    """Gray, gray 16-bit, BGRA and BGR 16-bit PNGs with one labelled box; returns the box RGB per stem."""
    x1, y1, x2, y2 = BOX
    gray = np.full((H, W), 30, np.uint8)
    gray[y1:y2, x1:x2] = 200
    rgba = np.full((H, W, 4), (40, 40, 40, 255), np.uint8)
    rgba[y1:y2, x1:x2] = (0, 0, 255, 255)  # BGRA red
    deep = np.full((H, W, 3), 20 * 257, np.uint16)
    deep[y1:y2, x1:x2] = (0, 255 * 257, 0)  # BGR green, 16-bit
    gray16 = (gray.astype(np.uint16) * 257)
    images = {"gray": (gray, (200, 200, 200)), "gray16": (gray16, (200, 200, 200)),
              "rgba": (rgba, (255, 0, 0)), "deep": (deep, (0, 255, 0))}
    for stem, (im, _) in images.items():
        assert cv2.imwrite(str(ims / f"{stem}.png"), im)
        (lbs / f"{stem}.txt").write_text(BOX_ROW)
    return {stem: rgb for stem, (_, rgb) in images.items()}


def test_gray_rgba_16bit_png_load_as_rgb_uint8(tmp_path):
    ims, lbs = _dirs(tmp_path)
    expected = _odd_format_images(ims, lbs)
    ds = LoadImagesAndLabels(ims, img_size=160, nc=4)
    assert ds.scan.counts == {"found": 4, "missing": 0, "empty": 0, "corrupt": 0}
    assert ds.shapes.tolist() == [[W, H]] * 4
    for i in range(len(ds)):
        im, t, path, shapes = ds[i]
        rgb = expected[Path(path).stem]
        assert im.shape == (3, 160, 160) and im.dtype == torch.uint8, path
        assert shapes == ((H, W), ((0.8, 0.8), (0.0, 32.0))), path  # 200x120 -> 160x96, 32 px pad top/bottom
        assert t[:, 1].tolist() == [1.0]
        assert torch.allclose(t[0, 2:], torch.tensor([0.4, 0.5, 0.3, 0.3]), atol=1e-6), path
        np.testing.assert_array_equal(_box_pixel(im, t), rgb, err_msg=path)
        assert (im[:, :32] == PAD_COLOR[0]).all() and (im[:, -32:] == PAD_COLOR[0]).all(), path


def test_exif_rotated_jpeg_shapes_and_pixels_follow_display(tmp_path):
    ims, lbs = _dirs(tmp_path)
    shown = np.full((H, W, 3), 90, np.uint8)  # the image as displayed (200 wide), RGB
    x1, y1, x2, y2 = BOX
    shown[y1:y2, x1:x2] = (255, 0, 0)
    stored = Image.fromarray(shown).transpose(Image.Transpose.ROTATE_90)  # what orientation 6 displays as `shown`
    exif = Image.Exif()
    exif[0x0112] = 6
    path = ims / "rot.jpg"
    stored.save(path, quality=95, exif=exif)
    (lbs / "rot.txt").write_text(BOX_ROW)  # label in the displayed orientation
    with Image.open(path) as im:
        assert im.size == (H, W) and ImageOps.exif_transpose(im).size == (W, H)  # the file really is rotated
    ds = LoadImagesAndLabels(ims, img_size=W, nc=4)
    assert ds.shapes.tolist() == [[W, H]]
    assert read_image(path).shape == (H, W, 3)
    im, t, _, shapes = ds[0]
    assert shapes[0] == (H, W)
    r, g, b = _box_pixel(im, t).astype(int)
    assert r > 200 and g < 50 and b < 50  # the labelled box lies on the red object
    assert (im[:, : (W - H) // 2 - 1] == PAD_COLOR[0]).all()  # wide image: padding above, not beside


def _samples(ds) -> list[tuple]:
    return [ds[i] for i in range(len(ds))]


def _assert_same_samples(a: list[tuple], b: list[tuple]) -> None:
    for (im_a, t_a, p_a, s_a), (im_b, t_b, p_b, s_b) in zip(a, b, strict=True):
        assert p_a == p_b and s_a == s_b
        assert torch.equal(im_a, im_b) and torch.equal(t_a, t_b), p_a


def test_disk_cache_written_then_reused(tmp_path):
    ims = _copy_coco(tmp_path, 4)
    plain = _samples(LoadImagesAndLabels(ims, img_size=128, nc=80))
    ds = LoadImagesAndLabels(ims, img_size=128, cache="disk", nc=80)
    npys = sorted(ims.glob("*.npy"))
    assert [p.stem for p in npys] == sorted(Path(f).stem for f in ds.im_files)
    for f, npy in zip(ds.im_files, ds.npy_files):
        np.testing.assert_array_equal(np.load(npy), read_image(f))
    _assert_same_samples(_samples(ds), plain)
    mtimes = [p.stat().st_mtime_ns for p in npys]
    blank = np.zeros_like(np.load(ds.npy_files[0]))
    np.save(ds.npy_files[0], blank)  # a second pass must read this file, not the jpg
    again = LoadImagesAndLabels(ims, img_size=128, cache="disk", nc=80)
    assert [p.stat().st_mtime_ns for p in npys[1:]] == mtimes[1:]  # not rewritten
    im0 = again[0][0]
    assert (im0 == 0).sum() > 0.3 * im0.numel() and ((im0 == 0) | (im0 == PAD_COLOR[0])).all()
    _assert_same_samples(_samples(again)[1:], plain[1:])


def test_disk_cache_read_only_folder_warns(tmp_path, caplog):
    ims = _copy_coco(tmp_path, 3)
    plain = _samples(LoadImagesAndLabels(ims, img_size=128, nc=80))
    mode = ims.stat().st_mode
    os.chmod(ims, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        with caplog.at_level(logging.WARNING, logger="yolo.data"):
            ds = LoadImagesAndLabels(ims, img_size=128, cache="disk", nc=80)
        got = _samples(ds)
    finally:
        os.chmod(ims, mode)
    assert not list(ims.glob("*.npy"))
    assert "read-only" in caplog.text and str(ims) in caplog.text
    _assert_same_samples(got, plain)


def _batches(loader) -> list[tuple]:
    return [(im, t, paths, shapes) for im, t, paths, shapes in loader]


@pytest.mark.parametrize("augment,rect", [(False, True), (True, False)])
def test_ram_cache_same_batches_as_no_cache(tmp_path, augment, rect):
    ims = _copy_coco(tmp_path, 6)
    hyp = load_hyp(HYP_LOW) if augment else None
    runs = []
    for cache in (None, "ram"):
        torch.manual_seed(0)  # the augmentation generator is seeded from torch
        loader, ds = create_dataloader(ims, 128, 3, 32, hyp=hyp, augment=augment, cache=cache, rect=rect,
                                       workers=0, nc=80)
        runs.append(_batches(loader))
    assert sum(im is not None for im in ds.ims) == len(ds)
    for a, b in zip(*runs, strict=True):
        assert a[2] == b[2] and a[3] == b[3]
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gloo_group():
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("workers", [0, 2])
def test_distributed_sampler_yields_every_image_once(tmp_path, gloo_group, workers):
    ims = _copy_coco(tmp_path, 5)
    loader, ds = create_dataloader(ims, 64, 2, 32, workers=workers, shuffle=True, distributed=True, seed=3, nc=80)
    assert isinstance(loader.sampler, DistributedSampler)
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        paths = [p for _, _, batch_paths, _ in loader for p in batch_paths]
        assert sorted(paths) == sorted(ds.im_files)  # all images, each once
    assert len(loader) == 3


def _palette_images(ims: Path, lbs: Path) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """Four 200x120 images, each a distinct solid background with a distinct box; returns (bg, box) RGB."""
    palettes = [((200, 0, 0), (0, 0, 250)), ((0, 200, 0), (250, 250, 0)), ((0, 0, 200), (250, 0, 250)),
                ((200, 200, 0), (0, 250, 250))]
    x1, y1, x2, y2 = BOX
    for k, (bg, box) in enumerate(palettes):
        im = np.zeros((H, W, 3), np.uint8)
        im[:] = bg[::-1]
        im[y1:y2, x1:x2] = box[::-1]
        assert cv2.imwrite(str(ims / f"p{k}.png"), im)
        (lbs / f"p{k}.txt").write_text(BOX_ROW)
    return palettes


def _colours_present(im: torch.Tensor, palettes) -> set[int]:
    """Indices of the images whose background colour appears in a sample (at least 50 pixels)."""
    px = im.permute(1, 2, 0).reshape(-1, 3)
    return {k for k, (bg, _) in enumerate(palettes) if (px == torch.tensor(bg, dtype=torch.uint8)).all(1).sum() >= 50}


def test_mosaic_off_gives_single_letterboxed_images(tmp_path):
    ims, lbs = _dirs(tmp_path)
    palettes = _palette_images(ims, lbs)
    hyp = load_hyp(HYP_LOW) | {"hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0}  # keep colours exact
    torch.manual_seed(0)
    ds = LoadImagesAndLabels(ims, img_size=160, augment=True, hyp=hyp, nc=4)
    assert ds.mosaic
    mixed = 0
    for i in range(len(ds)):
        im, t, _, shapes = ds[i]
        assert shapes is None and im.shape == (3, 160, 160)
        mixed += len(_colours_present(im, palettes)) > 1
    assert mixed >= 2  # mosaic samples show several source images
    ds.mosaic = False  # what --close-mosaic does
    for i in range(len(ds)):
        im, t, path, shapes = ds[i]
        k = int(Path(path).stem[1:])
        assert im.shape == (3, 160, 160) and shapes is not None and shapes[0] == (H, W)
        assert _colours_present(im, palettes) == {k}
        assert len(t) == 1 and (t[:, 4:6] > 0).all()
        xyxy = xywhn2xyxy(t[:, 2:6].numpy().astype(np.float64), 160, 160)
        assert (xyxy >= 0).all() and (xyxy <= 160).all()
        np.testing.assert_array_equal(_box_pixel(im, t), palettes[k][1])


def test_summary_counts_duplicate_row_16bit_and_corrupt(tmp_path, caplog):
    ims, lbs = _dirs(tmp_path)
    deep = np.full((H, W, 3), 1000, np.uint16)
    assert cv2.imwrite(str(ims / "deep.png"), deep)
    (lbs / "deep.txt").write_text(BOX_ROW + "0 0.2 0.2 0.1 0.1\n" + BOX_ROW)  # third row duplicates the first
    (ims / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))  # PNG signature, garbage body
    (lbs / "broken.txt").write_text(BOX_ROW)
    assert cv2.imwrite(str(ims / "plain.png"), np.full((H, W, 3), 60, np.uint8))
    (lbs / "plain.txt").write_text("")
    assert cv2.imwrite(str(ims / "nolabel.png"), np.full((H, W, 3), 70, np.uint8))
    with caplog.at_level(logging.INFO, logger="yolo.data"):
        ds = LoadImagesAndLabels(ims, img_size=128, nc=4)
    assert ds.scan.counts == {"found": 1, "missing": 1, "empty": 1, "corrupt": 1}
    assert "1 labels found, 1 missing, 1 empty, 1 corrupt (2 background images, 3 images kept)" in caplog.text
    assert f"{lbs / 'deep.txt'}: 1 duplicate row(s) removed" in caplog.text
    assert f"{ims / 'broken.png'}: skipped, not a readable image" in caplog.text
    assert sorted(Path(f).name for f in ds.im_files) == ["deep.png", "nolabel.png", "plain.png"]
    lb = ds.labels[[Path(f).name for f in ds.im_files].index("deep.png")]
    np.testing.assert_allclose(lb, [[1, 0.4, 0.5, 0.3, 0.5], [0, 0.2, 0.2, 0.1, 0.1]], atol=1e-7)
    im, t, _, _ = ds[[Path(f).name for f in ds.im_files].index("deep.png")]
    assert im.dtype == torch.uint8 and (im[:, 40:88] == 1000 // 257).all()  # 16-bit scaled to 8-bit
