"""Augmentation: boxes stay on their objects and inside the image; zero gains change nothing."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tests.shared_data import shared_path
from utils.annotate import draw_boxes
from utils.data.augment import augment_hsv, box_candidates, flip_lr, flip_ud, letterbox, mixup, random_perspective
from utils.boxes import xywhn2xyxy
from utils.data.dataloaders import LoadImagesAndLabels, create_dataloader
from utils.hyp import HYP_KEYS, load_hyp

HYP_LOW = "data/hyps/hyp.scratch-low.yaml"


def _coco_dir():
    return shared_path("datasets", "coco128", "images", "train2017")


def _check_targets(im: torch.Tensor, t: torch.Tensor) -> np.ndarray:
    """Every normalised box lies inside the image with a positive area; returns pixel xyxy."""
    h, w = im.shape[-2:]
    xyxy = xywhn2xyxy(t[:, 2:6].numpy().astype(np.float64), w, h)
    assert (t[:, 4:6] > 0).all()
    assert (xyxy >= -1e-3).all() and (xyxy[:, [0, 2]] <= w + 1e-3).all() and (xyxy[:, [1, 3]] <= h + 1e-3).all()
    return xyxy


def test_mosaic_perspective_flip_boxes_inside(tmp_path):
    hyp = load_hyp(HYP_LOW) | {"degrees": 10.0, "shear": 5.0, "perspective": 0.0005, "flipud": 0.5, "mixup": 0.5}
    torch.manual_seed(0)
    ds = LoadImagesAndLabels(_coco_dir(), img_size=320, augment=True, hyp=hyp)
    n_boxes = 0
    for i in range(12):
        im, t, path, shapes = ds[i]
        assert im.shape == (3, 320, 320) and im.dtype == torch.uint8 and shapes is None
        xyxy = _check_targets(im, t)
        n_boxes += len(t)
        canvas = np.ascontiguousarray(im.numpy().transpose(1, 2, 0)[..., ::-1])
        draw_boxes(canvas, xyxy, [str(int(c)) for c in t[:, 1]])
        assert cv2.imwrite(str(tmp_path / f"aug{i}.jpg"), canvas)
    assert n_boxes > 50


def test_zero_gains_return_letterbox_and_original_boxes():
    hyp = {k: 0.0 for k in HYP_KEYS}
    aug = LoadImagesAndLabels(_coco_dir(), img_size=640, augment=True, hyp=hyp)
    assert aug.mosaic  # on, but probability 0
    for name in ("000000000009.jpg", "000000000036.jpg"):
        i = [p.endswith(name) for p in aug.im_files].index(True)
        im, t, _, shapes = aug[i]
        im0 = cv2.imread(aug.im_files[i])
        h0, w0 = im0.shape[:2]
        r = 640 / max(h0, w0)
        ref, ratio, (dw, dh) = letterbox(cv2.resize(im0, (round(w0 * r), round(h0 * r))) if r != 1 else im0,
                                         640, auto=False)
        assert torch.equal(im, torch.from_numpy(np.ascontiguousarray(ref.transpose(2, 0, 1)[::-1])))
        lb = aug.labels[i]
        np.testing.assert_array_equal(t[:, 1].numpy(), lb[:, 0])
        # back to the original image's normalised coordinates
        xy = (t[:, 2:4].numpy() * 640 - [dw, dh]) / [w0 * r, h0 * r]
        wh = t[:, 4:6].numpy() * 640 / [w0 * r, h0 * r]
        np.testing.assert_allclose(np.hstack([xy, wh]), lb[:, 1:], atol=1e-6)


def test_perspective_identity_and_candidates():
    rng = np.random.default_rng(0)
    im = np.random.default_rng(1).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    t = np.array([[1, 10, 10, 40, 30], [2, 0, 0, 95, 63]], np.float64)
    out, t2 = random_perspective(im, t.copy(), rng, degrees=0, translate=0, scale=0, shear=0, perspective=0)
    assert out is im and np.array_equal(t2, t)
    out, t3 = random_perspective(im, t.copy(), rng, degrees=0, translate=0.5, scale=0, shear=0)
    assert out.shape == im.shape and (t3[:, 1:] >= 0).all() and (t3[:, [3]] <= 96).all()
    keep = box_candidates(np.array([[0, 0, 10, 10], [0, 0, 10, 10]]).T, np.array([[0, 0, 9, 9], [0, 0, 1.5, 9]]).T)
    assert keep.tolist() == [True, False]


def test_flips_and_hsv_and_mixup():
    rng = np.random.default_rng(0)
    im = np.random.default_rng(1).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    lb = np.array([[0, 0.25, 0.1, 0.2, 0.1]], np.float32)
    im2, lb2 = flip_lr(im, lb)
    assert np.array_equal(im2[:, ::-1], im) and lb2[0, 1] == pytest.approx(0.75) and lb[0, 1] == 0.25
    im3, lb3 = flip_ud(im, lb)
    assert np.array_equal(im3[::-1], im) and lb3[0, 2] == pytest.approx(0.9)
    same = im.copy()
    augment_hsv(same, rng, 0, 0, 0)
    assert np.array_equal(same, im)
    augment_hsv(same, rng, 0.015, 0.7, 0.4)
    assert not np.array_equal(same, im) and same.dtype == np.uint8
    m, ml = mixup(im, lb, im3, lb3, rng)
    assert m.shape == im.shape and len(ml) == 2


def test_loader_collate_and_seed():
    hyp = load_hyp(HYP_LOW)
    batches = []
    for _ in range(2):
        torch.manual_seed(0)
        loader, ds = create_dataloader(_coco_dir(), 256, 8, 32, hyp=hyp, augment=True, workers=0, shuffle=True,
                                       seed=3)
        imgs, targets, paths, shapes = next(iter(loader))
        batches.append((imgs, targets, paths))
    assert imgs.shape == (8, 3, 256, 256) and imgs.dtype == torch.uint8
    assert targets.shape[1] == 6 and targets[:, 0].max() <= 7 and len(paths) == 8 and len(shapes) == 8
    assert batches[0][2] == batches[1][2] and torch.equal(batches[0][0], batches[1][0])
    assert torch.equal(batches[0][1], batches[1][1])


def test_hsv_equals_yolov5s_per_channel_recipe():
    """augment_hsv's one-pass 3-channel LUT gives exactly YOLOv5's split / per-channel LUT / merge pixels."""
    import cv2

    im = cv2.imread(str(_coco_dir() / "000000000009.jpg"))
    for seed in range(4):
        got = im.copy()
        augment_hsv(got, np.random.default_rng(seed), 0.015, 0.7, 0.4)
        g = np.random.default_rng(seed).uniform(-1, 1, 3) * (0.015, 0.7, 0.4) + 1
        hue, sat, val = cv2.split(cv2.cvtColor(im, cv2.COLOR_BGR2HSV))
        x = np.arange(256, dtype=np.float64)
        want = cv2.merge((cv2.LUT(hue, ((x * g[0]) % 180).astype(np.uint8)),
                          cv2.LUT(sat, np.clip(x * g[1], 0, 255).astype(np.uint8)),
                          cv2.LUT(val, np.clip(x * g[2], 0, 255).astype(np.uint8))))
        want = cv2.cvtColor(want, cv2.COLOR_HSV2BGR)
        assert np.array_equal(got, want), seed
        assert not np.array_equal(got, im)
