"""Detection dataset and loaders (YOLOv5 semantics): verified labels, rect batches, caching, augmentation."""
from __future__ import annotations

import os
import random
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate
from tqdm import tqdm

from utils.data.augment import augment_hsv, flip_lr, flip_ud, letterbox, mixup, random_perspective
from utils.boxes import xywhn2xyxy, xyxy2xywhn
from utils.data.chw import chw_rgb
from utils.data.data_order import ResumableSampler
from utils.data.files import img2label_paths, list_image_files
from utils.data.image_check import read_image
from utils.data.image_decode import decode_image
from utils.data.label_cache import LOGGER, is_writeable, load_verified
from utils.data.mosaic import mosaic4
from utils.data.worker_fork import fork_without_garbage

CACHE_MODES = (None, "ram", "disk")


def rect_batch_shapes(shapes_wh: np.ndarray, batch_size: int, img_size: int, stride: int,
                      pad: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort images by aspect ratio h/w; returns (order, batch index per sorted image, batch shapes [h, w])."""
    order = (shapes_wh[:, 1] / shapes_wh[:, 0]).argsort()
    ar = (shapes_wh[:, 1] / shapes_wh[:, 0])[order]
    bi = np.floor(np.arange(len(ar)) / batch_size).astype(int)
    nb = bi[-1] + 1
    shapes = np.ones((nb, 2))
    for i in range(nb):
        lo, hi = ar[bi == i].min(), ar[bi == i].max()
        if hi < 1:
            shapes[i] = [hi, 1]
        elif lo > 1:
            shapes[i] = [1, 1 / lo]
    return order, bi, np.ceil(shapes * img_size / stride + pad).astype(int) * stride


def resize_long_side(im: np.ndarray, img_size: int, augment: bool) -> np.ndarray:
    """The image with its long side resized to img_size (bilinear when augmenting or enlarging, else area)."""
    h0, w0 = im.shape[:2]
    r = img_size / max(h0, w0)
    if r == 1:
        return im
    interp = cv2.INTER_LINEAR if (augment or r > 1) else cv2.INTER_AREA
    # truncation, as YOLOv5 v7.0 (int): with it val.py reproduces the official coco128 figures to 1e-7
    return cv2.resize(im, (int(w0 * r), int(h0 * r)), interpolation=interp)


class LoadImagesAndLabels(Dataset):
    """Images with verified YOLO labels; mosaic/perspective/HSV/flip/mixup when `augment`."""

    def __init__(self, path, img_size: int = 640, batch_size: int = 16, augment: bool = False,
                 hyp: dict | None = None, rect: bool = False, cache: str | None = None, single_cls: bool = False,
                 stride: int = 32, pad: float = 0.0, prefix: str = "", nc: int | None = None):
        if cache not in CACHE_MODES:
            raise ValueError(f"cache must be one of {CACHE_MODES}, got {cache!r}")
        if augment and hyp is None:
            raise ValueError("augment=True needs a hyp dict (see utils/hyp.load_hyp)")
        self.img_size, self.augment, self.hyp, self.rect, self.stride = img_size, augment, hyp, rect, stride
        self.mosaic = augment and not rect
        res = load_verified(list_image_files(path), img2label_paths(list_image_files(path)), nc, prefix)
        if not res.im_files:
            raise FileNotFoundError(f"{prefix}no usable images in {path}: {res.summary()}")
        self.scan = res
        self.im_files, self.label_files = res.im_files, res.label_files
        self.labels = [lb.copy() for lb in res.labels]
        if single_cls:
            for lb in self.labels:
                lb[:, 0] = 0
        self.shapes = np.array(res.shapes, dtype=np.float64)
        self.indices = np.arange(len(self.im_files))
        self.batch_shapes = self.batch = None
        if rect:
            self._apply_rect(batch_size, pad)
        self._rng, self._rng_pid = None, None
        self.ims: list[np.ndarray | None] = [None] * len(self.im_files)
        self.npy_files = [Path(f).with_suffix(".npy") for f in self.im_files]
        self.cache = cache
        if cache:
            self._fill_cache(cache, prefix)

    def _apply_rect(self, batch_size: int, pad: float) -> None:
        order, self.batch, self.batch_shapes = rect_batch_shapes(self.shapes, batch_size, self.img_size,
                                                                 self.stride, pad)
        self.im_files = [self.im_files[i] for i in order]
        self.label_files = [self.label_files[i] for i in order]
        self.labels = [self.labels[i] for i in order]
        self.shapes = self.shapes[order]

    def _fill_cache(self, mode: str, prefix: str) -> None:
        """Decode every image once: into RAM (resized) or to .npy files next to the images."""
        nbytes, n, failed = 0, 0, {}
        for i in tqdm(range(len(self.im_files)), desc=f"{prefix}Caching images ({mode})", leave=False):
            if mode == "disk":
                err = self._cache_to_disk(i)
                if err:
                    failed.setdefault(str(self.npy_files[i].parent), [0, err])[0] += 1
                    continue
                nbytes += self.npy_files[i].stat().st_size
            else:
                self.ims[i] = self.load_image(i)[0]
                nbytes += self.ims[i].nbytes
            n += 1
        for folder, (count, err) in failed.items():
            LOGGER.warning(f"{prefix}WARNING --cache disk: {folder} {err}, {count} images not cached "
                           "(decoded from the original files; use --cache ram)")
        LOGGER.info(f"{prefix}cached {n} images ({nbytes / 1e9:.2f} GB {mode})")

    def _cache_to_disk(self, i: int) -> str:
        """Save image i as .npy next to it unless present (atomically); returns '' or why it could not."""
        npy = self.npy_files[i]
        if npy.exists():
            return ""
        if not is_writeable(npy.parent):
            return "is read-only"
        tmp = npy.with_name(f"{npy.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.save(f, read_image(self.im_files[i]))
            os.replace(tmp, npy)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            return f"is not writeable ({e.strerror})"
        return ""

    def rng(self) -> np.random.Generator:
        """Per-process generator seeded from torch (distinct per worker, reproducible with a seed)."""
        if self._rng is None or self._rng_pid != os.getpid():
            info = torch.utils.data.get_worker_info()
            seed = info.seed if info is not None else torch.initial_seed()
            self._rng, self._rng_pid = np.random.default_rng(seed % 2**63), os.getpid()
        return self._rng

    def __len__(self) -> int:
        return len(self.im_files)

    def load_image(self, i: int) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        """Image i with its long side resized to img_size; returns (im, (h0, w0), (h, w))."""
        if self.ims[i] is not None:
            im = self.ims[i]
            return im, self._orig_hw(i), im.shape[:2]
        if self.cache == "disk" and self.npy_files[i].exists():
            im = np.load(self.npy_files[i])
            h0, w0 = im.shape[:2]
        else:  # training: a JPEG >= 4x img_size decodes reduced (utils/data/image_decode.py); validation: full size
            im, (h0, w0) = decode_image(self.im_files[i], self.img_size if self.augment else None)
        r = self.img_size / max(h0, w0)
        if r != 1:
            interp = cv2.INTER_LINEAR if (self.augment or r > 1) else cv2.INTER_AREA
            # truncation, as YOLOv5 v7.0 (int): with it val.py reproduces the official coco128 figures to 1e-7
            im = cv2.resize(im, (int(w0 * r), int(h0 * r)), interpolation=interp)
        return im, (h0, w0), im.shape[:2]

    def _orig_hw(self, i: int) -> tuple[int, int]:
        w, h = self.shapes[i]
        return int(h), int(w)

    def load_mosaic(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Mosaic of `index` and 3 random images, then random perspective back to img_size."""
        rng, s, hyp = self.rng(), self.img_size, self.hyp
        idx = [index, *rng.choice(len(self), 3)]
        rng.shuffle(idx)
        ims = [self.load_image(i)[0] for i in idx]
        im4, lab4 = mosaic4(ims, [self.labels[i] for i in idx], s, rng)
        return random_perspective(im4, lab4, rng, degrees=hyp["degrees"], translate=hyp["translate"],
                                  scale=hyp["scale"], shear=hyp["shear"], perspective=hyp["perspective"],
                                  border=(-s // 2, -s // 2))

    def _load_letterboxed(self, index: int):
        """Single image letterboxed to its (rect) batch shape; labels as pixel xyxy."""
        im, (h0, w0), (h, w) = self.load_image(index)
        shape = self.batch_shapes[self.batch[index]] if self.rect else self.img_size
        im, ratio, pad = letterbox(im, shape, auto=False, scaleup=self.augment)
        shapes = (h0, w0), ((h / h0, w / w0), pad)
        labels = self.labels[index].copy()
        if labels.size:
            labels[:, 1:] = xywhn2xyxy(labels[:, 1:], ratio[0] * w, ratio[1] * h, padw=pad[0], padh=pad[1])
        if self.augment:
            hyp = self.hyp
            im, labels = random_perspective(im, labels, self.rng(), degrees=hyp["degrees"],
                                            translate=hyp["translate"], scale=hyp["scale"], shear=hyp["shear"],
                                            perspective=hyp["perspective"])
        return im, labels, shapes

    def __getitem__(self, index: int):
        if getattr(index, "seed", None) is not None:  # a SeededIndex (utils/data/data_order.py): per-sample draws
            self._rng, self._rng_pid = np.random.default_rng(index.seed), os.getpid()
        index = int(self.indices[index])
        hyp, rng = self.hyp, self.rng()
        if self.mosaic and rng.random() < hyp["mosaic"]:
            im, labels = self.load_mosaic(index)
            shapes = None
            if rng.random() < hyp["mixup"]:
                im, labels = mixup(im, labels, *self.load_mosaic(int(rng.integers(len(self)))), rng)
        else:
            im, labels, shapes = self._load_letterboxed(index)
        labels = labels.astype(np.float32)
        if len(labels):
            labels[:, 1:5] = xyxy2xywhn(labels[:, 1:5], w=im.shape[1], h=im.shape[0], clip=True, eps=1e-3)
        if self.augment:
            augment_hsv(im, rng, hgain=hyp["hsv_h"], sgain=hyp["hsv_s"], vgain=hyp["hsv_v"])
            if rng.random() < hyp["flipud"]:
                im, labels = flip_ud(im, labels)
            if rng.random() < hyp["fliplr"]:
                im, labels = flip_lr(im, labels)
        out = torch.zeros((len(labels), 6))
        if len(labels):
            out[:, 1:] = torch.from_numpy(labels)
        return torch.from_numpy(chw_rgb(im)), out, self.im_files[index], shapes

    @staticmethod
    def collate_fn(batch):
        """Stack images; targets (n, 6) [img_idx, cls, cx, cy, w, h]; paths and shapes as tuples."""
        ims, labels, paths, shapes = zip(*batch)
        for i, lb in enumerate(labels):
            lb[:, 0] = i
        # default_collate stacks a worker's batch straight into shared memory, which it crosses to the main process
        # through: torch.stack would build it in private memory and then copy every image (1.2 MB at 640) again
        return default_collate(list(ims)), torch.cat(labels, 0), paths, shapes

    @staticmethod
    def collate_fn4(batch):
        """--quad (YOLOv5's collate_fn4): each group of 4 images becomes one of twice the size.

        With probability 0.5 the group's first image is upsampled 2x (its labels unchanged, being normalised),
        otherwise the 4 are tiled [[0, 2], [1, 3]] (column-major) with their labels shifted into their quarter and
        halved. A batch of B images gives B // 4 images (a batch of fewer than 4: its first image upsampled)."""
        ims, labels, paths, shapes = zip(*batch)
        starts = list(range(0, len(ims) - 3, 4)) or [0]
        dy, dx = torch.tensor([0.0, 0, 0, 1, 0, 0]), torch.tensor([0.0, 0, 1, 0, 0, 0])
        half = torch.tensor([1.0, 1, 0.5, 0.5, 0.5, 0.5])
        im4, label4 = [], []
        for i in starts:
            if i + 4 > len(ims) or random.random() < 0.5:
                im = F.interpolate(ims[i][None].float(), scale_factor=2.0, mode="bilinear", align_corners=False)
                im4.append(im[0].to(ims[i].dtype))
                label4.append(labels[i])
            else:
                col0, col1 = torch.cat((ims[i], ims[i + 1]), 1), torch.cat((ims[i + 2], ims[i + 3]), 1)
                im4.append(torch.cat((col0, col1), 2))
                label4.append(torch.cat((labels[i], labels[i + 1] + dy, labels[i + 2] + dx,
                                         labels[i + 3] + dy + dx), 0) * half)
        for j, lb in enumerate(label4):
            lb[:, 0] = j
        return torch.stack(im4, 0), torch.cat(label4, 0), paths[::4][:len(starts)], shapes[::4][:len(starts)]


class IndexSampler(Sampler):
    """Yields the dataset indices last given to `set_indices` (the --image-weights draw of an epoch).

    Under DDP each rank takes every world_size-th index of the list, padded to equal shares as
    DistributedSampler does; all ranks must be given the same list (rank 0's, broadcast)."""

    def __init__(self, n: int, rank: int = -1, world_size: int = 1) -> None:
        self.rank, self.world_size = max(rank, 0), world_size
        self.indices = list(range(n))

    def set_indices(self, indices: list[int]) -> None:
        self.indices = [int(i) for i in indices]

    def __len__(self) -> int:
        return -(-len(self.indices) // self.world_size)

    def __iter__(self):
        idx = self.indices
        idx = idx + idx[:len(self) * self.world_size - len(idx)]
        return iter(idx[self.rank::self.world_size])


def _worker_init(worker_id: int) -> None:
    cv2.setNumThreads(0)  # one OpenCV thread per worker: workers already use every core


class _RepeatSampler:
    """Endless iteration over a sampler (keeps workers alive across epochs)."""

    def __init__(self, sampler):
        self.sampler = sampler

    def __iter__(self):
        while True:
            yield from iter(self.sampler)


class InfiniteDataLoader(DataLoader):
    """DataLoader that reuses its worker processes across epochs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "batch_sampler", _RepeatSampler(self.batch_sampler))
        with fork_without_garbage():  # the workers start here
            self.iterator = super().__iter__()

    def __len__(self) -> int:
        return len(self.batch_sampler.sampler)

    def __iter__(self):
        for _ in range(len(self)):
            yield next(self.iterator)


def create_dataloader(path, imgsz: int, batch_size: int, stride: int, hyp: dict | None = None,
                      augment: bool = False, cache: str | None = None, pad: float = 0.0, rect: bool = False,
                      workers: int = 8, shuffle: bool = False, seed: int = 0, single_cls: bool = False,
                      prefix: str = "", distributed: bool = False, nc: int | None = None,
                      image_weights: bool = False, quad: bool = False, sample_seeds: bool = False):
    """Build (loader, dataset). Shuffled or DDP loaders use a ResumableSampler (utils/data/data_order.py: the order
    of an epoch from `seed` and the epoch, DistributedSampler's; with `sample_seeds` each sample's augmentation
    seeded from them too), so a checkpoint can resume mid-epoch.

    `image_weights`: an IndexSampler (loader.sampler) that yields the indices the training loop draws each epoch;
    `quad`: collate_fn4 (batches of batch_size // 4 images of twice the size)."""
    if rect and shuffle:
        LOGGER.warning(f"{prefix}WARNING rect=True is incompatible with shuffle, setting shuffle=False")
        shuffle = False
    dataset = LoadImagesAndLabels(path, imgsz, batch_size, augment=augment, hyp=hyp, rect=rect, cache=cache,
                                  single_cls=single_cls, stride=stride, pad=pad, prefix=prefix, nc=nc)
    batch_size = min(batch_size, len(dataset))
    nw = min(os.cpu_count() or 1, workers, batch_size if batch_size > 1 else 0)
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (-1, 1)
    if image_weights:
        sampler, shuffle = IndexSampler(len(dataset), rank, world), False
    else:
        sampler = ResumableSampler(len(dataset), rank, world, seed, shuffle, sample_seeds) \
            if (distributed or shuffle) else None
    generator = torch.Generator()
    generator.manual_seed(seed)
    loader = InfiniteDataLoader if nw > 0 else DataLoader
    return loader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, num_workers=nw,
                  sampler=sampler, pin_memory=False,
                  collate_fn=LoadImagesAndLabels.collate_fn4 if quad else LoadImagesAndLabels.collate_fn,
                  worker_init_fn=_worker_init, generator=generator), dataset
