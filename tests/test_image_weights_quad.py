"""--image-weights (sampling frequency follows YOLOv5's image weights) and --quad (collate_fn4) on coco128 images."""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.demo_subset import demo_subset_yaml
from tests.shared_data import shared_path
from utils.data.dataloaders import IndexSampler, LoadImagesAndLabels, create_dataloader
from utils.data.image_weights import class_weights, draw_indices, image_weights
from utils.train.setup import reset_loader

S = 64


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """8 coco128 images with their labels."""
    src = shared_path("datasets", "coco128")
    tmp = tmp_path_factory.mktemp("coco8")
    (tmp / "images").mkdir()
    (tmp / "labels").mkdir()
    for p in sorted((src / "images" / "train2017").glob("*.jpg"))[:8]:
        shutil.copy(p, tmp / "images")
        lb = src / "labels" / "train2017" / f"{p.stem}.txt"
        if lb.exists():
            shutil.copy(lb, tmp / "labels")
    return tmp / "images"


def test_class_and_image_weights_by_hand():
    labels = [np.array([[0, .5, .5, .1, .1]] * 3), np.array([[1, .5, .5, .1, .1]]),
              np.array([[1, .5, .5, .1, .1], [2, .2, .2, .1, .1]]), np.zeros((0, 5))]
    cw = class_weights(labels, 4)  # counts 3, 2, 1, 0 (absent counts as 1) -> 1/3, 1/2, 1, 1
    np.testing.assert_allclose(cw, np.array([1 / 3, 1 / 2, 1, 1]) / (1 / 3 + 1 / 2 + 2))
    iw = image_weights(labels, 4, cw)
    np.testing.assert_allclose(iw, [3 * cw[0], cw[1], cw[1] + cw[2], 0])


def test_draw_frequency_follows_image_weights_and_maps():
    labels = [np.array([[0, .5, .5, .1, .1]] * 4), np.array([[1, .5, .5, .1, .1]]),
              np.array([[2, .5, .5, .1, .1]]), np.zeros((0, 5))]
    rng = random.Random(0)
    counts = np.zeros(4)
    for _ in range(5000):
        counts += np.bincount(draw_indices(labels, 3, rng=rng), minlength=4)
    expect = image_weights(labels, 3, class_weights(labels, 3))
    np.testing.assert_allclose(counts / counts.sum(), expect / expect.sum(), atol=0.01)
    assert counts[3] == 0  # no labels: never drawn
    # a class already detected perfectly (mAP 1) is not drawn any more; half-detected ones 4x less than unseen
    maps = np.array([0.0, 1.0, 0.5])
    drawn = np.bincount([i for _ in range(3000) for i in draw_indices(labels, 3, maps, rng)], minlength=4)
    assert drawn[1] == 0 and drawn[3] == 0
    w = class_weights(labels, 3) * (1 - maps) ** 2
    ratio = drawn[2] / drawn[0]
    assert abs(ratio - w[2] / (4 * w[0])) < 0.1 * w[2] / (4 * w[0])


def test_index_sampler_ddp_shares_cover_the_draw():
    draw = [5, 1, 1, 7, 0, 3, 3]
    shares = []
    for rank in (0, 1):
        s = IndexSampler(8, rank, 2)
        s.set_indices(draw)
        shares.append(list(s))
        assert len(s) == 4
    assert sorted(shares[0] + shares[1]) == sorted(draw + draw[:1])  # padded to equal shares
    assert list(IndexSampler(3)) == [0, 1, 2]


def test_loader_with_workers_yields_the_new_draw_after_reset(images):
    """Persistent workers prefetch: after set_indices + reset_loader the next epoch is exactly the new draw."""
    loader, ds = create_dataloader(images, S, 2, 32, workers=1, image_weights=True, nc=80)
    assert isinstance(loader.sampler, IndexSampler)
    first = [p for _, _, paths, _ in loader for p in paths]
    assert first == ds.im_files  # before any draw: every image once, in order
    draw = [3, 3, 0, 6, 6, 6, 1, 2]
    loader.sampler.set_indices(draw)
    reset_loader(loader)
    assert [p for _, _, paths, _ in loader for p in paths] == [ds.im_files[i] for i in draw]


def _items(images: Path, n: int):
    ds = LoadImagesAndLabels(images, img_size=S, nc=80)
    return [ds[i] for i in range(n)]


def test_quad_tiles_four_images_and_shifts_their_labels(images):
    batch = _items(images, 8)
    random.seed(3)
    draws = [random.random() for _ in range(2)]
    random.seed(3)
    ims, targets, paths, shapes = LoadImagesAndLabels.collate_fn4(batch)
    assert ims.shape == (2, 3, 2 * S, 2 * S) and ims.dtype == torch.uint8 and len(paths) == 2
    assert paths == (batch[0][2], batch[4][2])
    for g, r in enumerate(draws):
        t = targets[targets[:, 0] == g]
        group = batch[4 * g:4 * g + 4]
        if r < 0.5:  # upsampled first image, its labels unchanged
            up = F.interpolate(group[0][0][None].float(), scale_factor=2.0, mode="bilinear", align_corners=False)
            assert torch.equal(ims[g], up[0].to(torch.uint8))
            torch.testing.assert_close(t[:, 1:], group[0][1][:, 1:])
            continue
        quarters = [ims[g][:, :S, :S], ims[g][:, S:, :S], ims[g][:, :S, S:], ims[g][:, S:, S:]]
        for k, (q, (im, lb, _, _)) in enumerate(zip(quarters, group)):
            assert torch.equal(q, im)
        want = torch.cat([lb[:, 1:] for _, lb, _, _ in group])
        want[:, 1] = (want[:, 1] + torch.cat([torch.full((len(b[1]),), k // 2 * 1.0) for k, b in enumerate(group)]))
        want[:, 2] = (want[:, 2] + torch.cat([torch.full((len(b[1]),), k % 2 * 1.0) for k, b in enumerate(group)]))
        want[:, 1:] *= 0.5
        torch.testing.assert_close(t[:, 1:], want)
    assert draws[0] < 0.5 <= draws[1]  # seed 3: the first group upsampled, the second tiled


def test_quad_loader_merges_batches(images):
    loader, _ = create_dataloader(images, S, 8, 32, workers=0, quad=True, nc=80)
    ims, targets, paths, _ = next(iter(loader))
    assert ims.shape == (2, 3, 2 * S, 2 * S)
    assert set(targets[:, 0].tolist()) <= {0.0, 1.0} and (targets[:, 2:] >= 0).all() and (targets[:, 2:] <= 1).all()


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_training_with_image_weights_and_quad(tmp_path):
    from train import train
    from utils.train.options import TrainOptions

    data = demo_subset_yaml(tmp_path, 16, 4)
    opts = TrainOptions(data=str(data), cfg="yolov5n.yaml", imgsz=S, epochs=2, batch_size=8, noautoanchor=True,
                        noplots=True, workers=1, image_weights=True, quad=True, project=str(tmp_path / "runs"))
    res = train(opts)
    assert res.epochs_done == 2 and all(np.isfinite(res.results))


@pytest.mark.slow
def test_image_weights_under_torchrun(tmp_path):
    """2 CPU ranks: rank 0 draws, both train on their share of the same draw; equal batch counts (no hang)."""
    import os
    import re
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    data = demo_subset_yaml(tmp_path, 16, 4)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(root / "train.py"), "--data", str(data), "--cfg", "yolov5n.yaml", "--imgsz", str(S), "--noautoanchor",
           "--noplots", "--workers", "1", "--epochs", "2", "--batch-size", "8", "--device", "cpu", "--image-weights",
           "--project", str(tmp_path / "runs")]
    p = subprocess.run(cmd, cwd=root, env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"},
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert re.search(r"DDP: final weights identical on 2 ranks", p.stderr), p.stderr[-3000:]
