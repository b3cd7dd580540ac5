"""Read WebDataset tar shards as training samples: each (rank, worker) its own shards, a shuffle buffer that
mosaic and mixup draw their extra images from, and epochs of a fixed sample count on every rank.

Per epoch the shard list is shuffled (the same on every rank, from seed and epoch) and dealt round-robin to the
world_size x workers readers. Every rank takes ceil(total / world_size) samples, split evenly over its workers;
a reader whose shards hold fewer samples than its share starts over on them (as DistributedSampler pads), so
every rank steps the same number of times. With equally sized shards that divide evenly, each sample is read
exactly once per epoch. A shard that cannot be opened, or ends early (truncated, corrupt), is reported with its
name and skipped; its reader fills its share from its other shards (from all shards if none of its own reads).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.tariterators import base_plus_ext, tar_file_iterator

from utils.cli import UserValueError
from utils.data.files import IMG_FORMATS
from utils.data.dataloaders import LoadImagesAndLabels, resize_long_side
from utils.data.label_check import check_label_lines
from utils.seeding import derive_seed, worker_seed
from utils.data.shards.spec import ShardSet, open_stream

LOGGER = logging.getLogger("yolo")
DEFAULT_BUFFER = 64  # decoded images per worker that mosaic/mixup partners come from (memory: ~img_size^2 * 3 each)


@dataclass
class Decoded:
    """One sample from a shard: the image resized to img_size (long side), its original size and labels."""
    im: np.ndarray
    hw0: tuple[int, int]
    labels: np.ndarray  # (n, 5) class cx cy w h, normalised
    name: str  # shard/key, for messages and plots


def reader_quotas(total: int, world_size: int, workers: int) -> list[int]:
    """Samples each worker of a rank reads per epoch: ceil(total / world_size) split as evenly as possible."""
    per_rank = -(-total // world_size)
    return [per_rank // workers + (w < per_rank % workers) for w in range(workers)]


def batches_per_epoch(total: int, world_size: int, workers: int, batch_size: int) -> int:
    """Batches one rank's loader yields per epoch (each worker batches its own samples)."""
    return sum(-(-q // batch_size) for q in reader_quotas(total, world_size, workers) if q)


def epoch_shard_order(n: int, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """The shard order of an epoch, identical on every rank."""
    if not shuffle:
        return list(range(n))
    return np.random.default_rng(derive_seed(seed, epoch, 0x5D)).permutation(n).tolist()


def assigned_shards(n: int, order: list[int], rank: int, world_size: int, worker: int, workers: int) -> list[int]:
    """Shard indices of one reader: every (world_size * workers)-th shard of the epoch's order."""
    slot = max(rank, 0) * workers + worker
    return order[slot::world_size * workers]


def _image_key(sample: dict) -> str | None:
    return next((k for k in sample if k in IMG_FORMATS), None)


def decode_sample(sample: dict, img_size: int, augment: bool, nc: int | None, single_cls: bool,
                  name: str) -> Decoded:
    """Image and labels of a grouped tar sample; ValueError naming what is wrong."""
    ext = _image_key(sample)
    if ext is None or "txt" not in sample:
        raise ValueError(f"incomplete sample (has {sorted(k for k in sample if not k.startswith('__'))}, "
                         "needs an image and a .txt)")
    im = cv2.imdecode(np.frombuffer(sample[ext], np.uint8), cv2.IMREAD_COLOR)
    if im is None:
        raise ValueError(f"{ext} image cannot be decoded")
    labels, *_ = check_label_lines(sample["txt"].decode("utf-8").splitlines(), nc)
    labels = labels.copy()
    if single_cls and len(labels):
        labels[:, 0] = 0
    hw0 = im.shape[:2]
    return Decoded(resize_long_side(im, img_size, augment), (int(hw0[0]), int(hw0[1])), labels, name)


class _BufferView(LoadImagesAndLabels):
    """The augmentation of LoadImagesAndLabels over decoded buffer items (item 0 the sample, the rest its
    possible mosaic/mixup partners); built per sample, never scans files."""

    def __init__(self, items: list[Decoded], owner: "ShardDataset", rng: np.random.Generator):  # noqa: D107
        self.img_size, self.augment, self.hyp, self.stride = owner.img_size, owner.augment, owner.hyp, owner.stride
        self.rect, self.mosaic, self.cache = False, owner.mosaic, None
        self.batch_shapes = self.batch = None
        self.ims = [it.im for it in items]
        self.labels = [it.labels for it in items]
        self.shapes = np.array([[it.hw0[1], it.hw0[0]] for it in items], dtype=np.float64)
        self.im_files = [it.name for it in items]
        self.indices = np.arange(len(items))
        self._rng, self._rng_pid = rng, os.getpid()


class ShardDataset(IterableDataset):
    """Training samples streamed from tar shards (see the module docstring); `set_epoch` before each epoch."""

    def __init__(self, shards: ShardSet, img_size: int = 640, hyp: dict | None = None, augment: bool = False,
                 stride: int = 32, rank: int = -1, world_size: int = 1, seed: int = 0, shuffle: bool = True,
                 buffer_size: int = DEFAULT_BUFFER, nc: int | None = None, single_cls: bool = False,
                 prefix: str = "") -> None:
        if augment and hyp is None:
            raise ValueError("augment=True needs a hyp dict (see utils/hyp.load_hyp)")
        if len(shards.urls) < world_size:
            raise UserValueError(f"{prefix}{len(shards.urls)} shards cannot be split over {world_size} ranks: "
                                 "write at least one shard per rank (tools/make_shards.py --shard-size)")
        self.shards, self.img_size, self.hyp, self.augment, self.stride = shards, img_size, hyp, augment, stride
        self.rank, self.world_size, self.seed, self.shuffle = rank, world_size, seed, shuffle
        self.buffer_size, self.nc, self.single_cls, self.prefix = max(buffer_size, 1), nc, single_cls, prefix
        self.mosaic = augment
        self.epoch = 0
        self.labels: list[np.ndarray] = []  # streamed: label statistics (autoanchor, plots) are not available
        self.skip: tuple[int, int] | None = None  # (batches, batch size) already consumed, see `set_skip`

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def total(self) -> int:
        return self.shards.total

    def _reader(self) -> tuple[int, int]:
        info = get_worker_info()
        return (info.id, info.num_workers) if info is not None else (0, 1)

    def _read_shard(self, i: int, reported: set[int]) -> Iterator[dict]:
        """Samples of shard i; a problem is reported once (with the shard's name) and the rest of the shard
        skipped, the samples read completely before it kept."""
        url, n, current = self.shards.urls[i], 0, {}
        try:
            with open_stream(url) as stream:
                for f in tar_file_iterator(stream):
                    key, ext = base_plus_ext(f["fname"])
                    if key is None:
                        continue
                    if current and key != current["__key__"]:
                        n += 1
                        yield current
                        current = {}
                    current.setdefault("__key__", key)
                    current[ext.lower()] = f["data"]
            if current:
                n += 1
                yield current
        except Exception as e:  # a reader problem is a report, never the end of training
            if current and "txt" in current and _image_key(current):
                n += 1
                yield current
            if i not in reported:
                reported.add(i)
                what = "cannot be read" if n == 0 else f"ends after {n} samples (truncated or corrupt)"
                LOGGER.warning(f"{self.prefix}WARNING shard {url} {what}: {type(e).__name__}: "
                               f"{str(e).split(' @ ')[0]}; skipped")

    def _stream(self, mine: list[int], quota: int) -> Iterator[Decoded]:
        """`quota` decoded samples from the reader's shards, starting over on them (or on all) when short."""
        got, pool, reported = 0, mine, set()
        while got < quota:
            before = got
            for i in pool:
                for sample in self._read_shard(i, reported):
                    name = f"{self.shards.urls[i].rsplit('/', 1)[-1]}/{sample['__key__']}"
                    try:
                        yield decode_sample(sample, self.img_size, self.augment, self.nc, self.single_cls, name)
                    except (ValueError, UnicodeDecodeError) as e:
                        LOGGER.warning(f"{self.prefix}WARNING {name}: {e}; sample skipped")
                        continue
                    got += 1
                    if got == quota:
                        return
            if got == before:
                if pool is not mine or len(mine) == len(self.shards.urls):
                    raise UserValueError(f"{self.prefix}no readable sample in any shard of {self.shards.index}")
                LOGGER.warning(f"{self.prefix}WARNING no readable sample in this reader's shards; reading all shards")
                pool = list(range(len(self.shards.urls)))

    def _buffered(self, items: Iterator[Decoded], rng: np.random.Generator) -> Iterator[list[Decoded]]:
        """Shuffle buffer: each item comes out once, at a random time, with the buffer it can draw partners from."""
        buf: list[Decoded] = []
        for it in items:
            buf.append(it)
            if len(buf) >= self.buffer_size:
                j = int(rng.integers(len(buf)))
                buf[j], buf[-1] = buf[-1], buf[j]
                yield [buf.pop(), *buf]
        while buf:
            j = int(rng.integers(len(buf)))
            buf[j], buf[-1] = buf[-1], buf[j]
            yield [buf.pop(), *buf]

    def __iter__(self):
        worker, workers = self._reader()
        order = epoch_shard_order(len(self.shards.urls), self.seed, self.epoch, self.shuffle)
        mine = assigned_shards(len(order), order, self.rank, self.world_size, worker, workers)
        quota = reader_quotas(self.total, self.world_size, workers)[worker]
        if not quota:
            return
        if not mine:  # fewer shards than readers on this rank: read from all of them
            mine = order
        wseed = worker_seed(self.seed, self.rank, worker, self.epoch)
        rng = np.random.default_rng(wseed)
        skip = self.skip_of(worker, workers)
        for n, group in enumerate(self._buffered(self._stream(mine, quota), rng)):
            if n < skip:
                continue  # resumed mid-epoch: the buffer and its draws replayed, the sample not augmented
            view = _BufferView(group, self, np.random.default_rng(derive_seed(wseed, n)))
            yield view[0]

    def set_skip(self, batches: int, batch_size: int) -> None:
        """Resume mid-epoch: leave out the first `batches` batches (of `batch_size`) this rank yielded this epoch."""
        self.skip = (int(batches), int(batch_size))

    def skip_of(self, worker: int, workers: int) -> int:
        """Samples worker `worker` leaves out for `set_skip`."""
        if not self.skip:
            return 0
        batches, batch_size = self.skip
        return worker_skips(reader_quotas(self.total, self.world_size, workers), batches, batch_size)[worker]


def worker_skips(quotas: list[int], batches: int, batch_size: int) -> list[int]:
    """Samples each worker had delivered when the loader had yielded `batches` batches (the
    DataLoader takes a batch from each worker in turn, passing over workers that are done)."""
    left = [-(-q // batch_size) for q in quotas]
    done = [0] * len(quotas)
    w = 0
    while batches and any(left):
        if left[w]:
            done[w] += min(batch_size, quotas[w] - done[w])
            left[w] -= 1
            batches -= 1
        w = (w + 1) % len(quotas)
    return done

