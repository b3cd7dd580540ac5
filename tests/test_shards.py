"""Tar shards: written from the demo dataset with checked labels, read back by 2 ranks x 2 workers with every
sample once per epoch, over HTTP from a local server, past missing and truncated shards, and resumed mid-epoch."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.demo_subset import demo_subset_yaml
from tests.local_http import serve
from tools.make_shards import make_shards
from utils.data.data_yaml import load_data_yaml
from utils.data.files import img2label_paths
from utils.hyp import load_hyp
from utils.data.label_check import check_label_lines
from utils.data.shards.loader import create_shard_loader
from utils.data.shards.read import ShardDataset, reader_quotas, worker_skips
from utils.data.shards.spec import expand, index_location, resolve_shards

ROOT = Path(__file__).resolve().parents[1]
N, SHARD = 16, 2  # 8 shards: 2 per reader of 2 ranks x 2 workers


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """16 demo images as 8 shards of 2 (tmp/shards/data.yaml)."""
    tmp = tmp_path_factory.mktemp("shards")
    make_shards(str(demo_subset_yaml(tmp, N, 2)), tmp / "shards", SHARD, ["train"])
    return tmp


@pytest.fixture(scope="module")
def hyp() -> dict:
    return load_hyp(ROOT / "data" / "hyps" / "hyp.scratch-low.yaml")


def _keys(loader) -> list[str]:
    return [p.rsplit("/", 1)[-1].split("_", 1)[1] for _, _, paths, _ in loader for p in paths]


def test_shards_hold_the_images_bytes_and_their_checked_labels(shards):
    """Each sample is the image file's bytes plus its label rows, which read back to the folder's float32 labels."""
    import tarfile

    cfg = load_data_yaml(shards / "shards" / "data.yaml")
    assert cfg.train == [str(shards / "shards" / "train-{000000..000007}.tar")]
    s = resolve_shards(cfg.train)
    assert s.counts == [SHARD] * 8 and s.total == N and s.names == list(cfg.names)
    images = (shards / "train.txt").read_text().split()
    with tarfile.open(s.urls[1]) as tf:
        names = tf.getnames()
        assert names == [f"00000002_{Path(images[2]).stem}.jpg", f"00000002_{Path(images[2]).stem}.txt",
                         f"00000003_{Path(images[3]).stem}.jpg", f"00000003_{Path(images[3]).stem}.txt"]
        assert tf.extractfile(names[0]).read() == Path(images[2]).read_bytes()
        rows = tf.extractfile(names[1]).read().decode().splitlines()
    folder = np.loadtxt(img2label_paths([images[2]])[0], ndmin=2).astype(np.float32)
    np.testing.assert_array_equal(check_label_lines(rows)[0], folder)


def test_labels_are_checked_when_written(tmp_path):
    """An image whose label has a class >= nc is left out of the shards and counted as skipped."""
    data = demo_subset_yaml(tmp_path, 4, 1)
    images = (tmp_path / "train.txt").read_text().split()
    for i, f in enumerate(images):  # a private copy (the demo labels stay intact)
        dst = tmp_path / "images" / Path(f).name
        dst.parent.mkdir(exist_ok=True)
        dst.write_bytes(Path(f).read_bytes())
        lb = Path(img2label_paths([str(dst)])[0])
        lb.parent.mkdir(exist_ok=True)
        lb.write_text("9 0.5 0.5 0.2 0.2\n" if i == 1 else Path(img2label_paths([f])[0]).read_text())
    raw = yaml.safe_load(data.read_text()) | {"train": "images"}
    data.write_text(yaml.safe_dump(raw))
    make_shards(str(data), tmp_path / "out", 10, ["train"])
    index = yaml.safe_load((tmp_path / "out" / "train-index.json").read_text())
    assert index["samples"] == 3 and index["skipped"] == 1


def test_index_location_and_patterns():
    assert index_location("s/train-{000000..000127}.tar") == "s/train-index.json"
    assert index_location("http://h:1/d/val-000003.tar") == "http://h:1/d/val-index.json"
    assert expand("a-{00..02}.tar") == ["a-00.tar", "a-01.tar", "a-02.tar"]


def test_data_yaml_keeps_urls_and_resolves_local_patterns(tmp_path):
    (tmp_path / "val").mkdir()
    f = tmp_path / "d.yaml"
    f.write_text(yaml.safe_dump({"path": str(tmp_path), "names": ["a"], "val": "val",
                                 "train": ["s/t-{0..3}.tar", "https://example.org/x/t-{0..1}.tar"]}))
    cfg = load_data_yaml(f)
    assert cfg.train == [str(tmp_path / "s/t-{0..3}.tar"), "https://example.org/x/t-{0..1}.tar"]


def _epoch_keys(patterns, hyp, epoch: int, workers: int = 2) -> tuple[list[list[str]], list[int]]:
    keys, lengths = [], []
    for rank in (0, 1):
        loader, _ = create_shard_loader(patterns, 64, 3, 32, hyp=hyp, augment=True, workers=workers, seed=0,
                                        rank=rank, world_size=2)
        loader.set_epoch(epoch)
        keys.append(_keys(loader))
        lengths.append(len(loader))
    return keys, lengths


def test_two_ranks_two_workers_read_every_sample_once_per_epoch(shards, hyp):
    """Ranks read disjoint halves, all 16 samples once, the same number of batches; the order changes by epoch."""
    patterns = load_data_yaml(shards / "shards" / "data.yaml").train
    images = sorted(Path(f).stem for f in (shards / "train.txt").read_text().split())
    orders = []
    for epoch in (0, 1):
        (r0, r1), lengths = _epoch_keys(patterns, hyp, epoch)
        assert len(r0) == len(r1) == N // 2 and not set(r0) & set(r1)
        assert sorted(r0 + r1) == images
        assert lengths[0] == lengths[1] == 4  # 2 workers x ceil(4 / 3) batches
        orders.append(r0)
    assert orders[0] != orders[1]


def test_shard_split_quotas_and_resume_skips():
    assert reader_quotas(17, 2, 2) == [5, 4]  # ceil(17 / 2) = 9 per rank: padded by a repeat
    assert worker_skips([5, 4], 3, 2) == [4, 2]  # batches w0, w1, w0 delivered


def test_shards_over_http(shards, hyp):
    """The same shards named by URL on a local server give the same samples."""
    with serve(shards / "shards") as srv:
        url = srv.url("train-{000000..000007}.tar")
        (r0, r1), _ = _epoch_keys([url], hyp, 0)
        assert srv.count("train-index.json") >= 1 and srv.count("train-000005.tar") >= 1
    (l0, l1), _ = _epoch_keys(load_data_yaml(shards / "shards" / "data.yaml").train, hyp, 0)
    assert (r0, r1) == (l0, l1)


def test_missing_and_truncated_shards_are_reported_and_skipped(shards, hyp, tmp_path, caplog):
    """Shard 3 gone, shard 5 cut mid-way: each named in a warning; every rank still gives its full batch count."""
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(shards / "shards", bad)
    (bad / "train-000003.tar").unlink()
    data = (bad / "train-000005.tar").read_bytes()
    (bad / "train-000005.tar").write_bytes(data[: len(data) * 3 // 4])  # inside the second sample
    pattern = str(bad / "train-{000000..000007}.tar")
    with caplog.at_level(logging.WARNING, logger="yolo"):  # workers=0: warnings logged in this process
        (r0, r1), lengths = _epoch_keys([pattern], hyp, 0, workers=0)
    assert "train-000003.tar cannot be read" in caplog.text
    assert "train-000005.tar ends after 1 samples" in caplog.text
    assert len(r0) == len(r1) == N // 2 and lengths == [3, 3]  # ceil(8 / 3)
    keys = set(r0 + r1)
    gone = {Path(f).stem for f in (shards / "train.txt").read_text().split()[6:8]}  # shard 3's two samples
    assert not keys & gone and len(keys) == N - 3  # 16 less shard 3 (2) and shard 5's second sample


def test_mid_epoch_skip_gives_the_rest_of_the_epoch(shards, hyp):
    """A loader told to skip 3 batches yields exactly the uninterrupted epoch's batches 3.., pixel for pixel."""
    patterns = load_data_yaml(shards / "shards" / "data.yaml").train
    loader, ds = create_shard_loader(patterns, 64, 2, 32, hyp=hyp, augment=True, workers=2, seed=3, rank=1,
                                     world_size=2)
    loader.set_epoch(1)
    full = list(loader)
    ds.set_skip(3, 2)
    loader.set_epoch(1)
    rest = list(loader)
    assert len(full) == len(loader) == 4 and len(rest) == 1
    for (a, ta, pa, _), (b, tb, pb, _) in zip(full[3:], rest):
        assert pa == pb and torch.equal(a, b) and torch.equal(ta, tb)


def test_shuffle_buffer_yields_each_item_once_with_unemitted_partners():
    """Each item comes out once, shuffled; its partners are items in the buffer (read, not yet given out)."""
    ds = ShardDataset.__new__(ShardDataset)
    ds.buffer_size = 5
    out: list[int] = []
    for group in ds._buffered(iter(range(40)), np.random.default_rng(0)):
        assert len(group) <= 5 and not set(group[1:]) & set(out) and group[0] not in group[1:]
        assert max(group) < len(out) + 5  # nothing beyond the buffer's reach
        out.append(group[0])
    assert sorted(out) == list(range(40)) and out != list(range(40))
