"""The training loader over tar shards: a fixed number of batches per epoch on every rank (utils/data/shards/read.py)."""
from __future__ import annotations

import logging
import os

from torch.utils.data import DataLoader

from utils.data.dataloaders import LoadImagesAndLabels, _worker_init
from utils.data.shards.read import DEFAULT_BUFFER, ShardDataset, batches_per_epoch
from utils.data.shards.spec import resolve_shards

LOGGER = logging.getLogger("yolo")


class ShardLoader:
    """Batches of a ShardDataset; `len()` is the same on every rank. Workers start per epoch (so the epoch and a
    mid-epoch skip reach them); an epoch not set with `set_epoch` follows the previous one."""

    def __init__(self, dataset: ShardDataset, batch_size: int, workers: int, quad: bool = False) -> None:
        self.dataset, self.batch_size, self.num_workers = dataset, batch_size, workers
        self.collate_fn = LoadImagesAndLabels.collate_fn4 if quad else LoadImagesAndLabels.collate_fn
        self.sampler = self  # train loops call loader.sampler.set_epoch(epoch)
        self._next_epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        self._next_epoch = int(epoch)

    def state_dict(self, epoch: int, consumed: int) -> dict:
        """Where the stream stands: `consumed` samples of this rank's share of `epoch` used (whole batches)."""
        return {"epoch": int(epoch), "consumed": int(consumed), "seed": int(self.dataset.seed),
                "n": int(self.dataset.total), "world_size": int(self.dataset.world_size), "shards": True}

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next epoch is `state['epoch']`, after its first `consumed` samples."""
        ds = self.dataset
        if not state.get("shards") or int(state["n"]) != ds.total or int(state["world_size"]) != ds.world_size:
            raise ValueError(f"data order saved for {state['n']} samples on {state['world_size']} ranks"
                             f"{'' if state.get('shards') else ' (an image folder)'}, resumed with {ds.total} shard "
                             f"samples on {ds.world_size}: cannot continue mid-epoch")
        ds.seed = int(state["seed"])
        self.start_at(state["epoch"], state["consumed"])

    def start_at(self, epoch: int, consumed: int = 0) -> None:
        """The next epoch is `epoch`, after its first `consumed` samples (whole batches)."""
        self.set_epoch(int(epoch))
        self.dataset.skip = (int(consumed) // self.batch_size, self.batch_size) if consumed else None

    def __len__(self) -> int:
        return batches_per_epoch(self.dataset.total, self.dataset.world_size, max(self.num_workers, 1),
                                 self.batch_size)

    def __iter__(self):
        ds = self.dataset
        ds.set_epoch(ds.epoch + 1 if self._next_epoch is None else self._next_epoch)
        self._next_epoch = None
        if ds.skip:
            LOGGER.info(f"{ds.prefix}resuming epoch {ds.epoch} after batch {ds.skip[0]}")
        loader = DataLoader(ds, batch_size=self.batch_size, num_workers=self.num_workers,
                            collate_fn=self.collate_fn, worker_init_fn=_worker_init, pin_memory=False)
        n, expected = 0, len(self) - (ds.skip[0] if ds.skip else 0)
        try:
            for batch in loader:
                n += 1
                yield batch
        finally:
            ds.skip = None  # a skip applies to the epoch it was set for
        if n != expected:
            LOGGER.warning(f"{ds.prefix}WARNING shard loader gave {n} batches, expected {expected}")


def create_shard_loader(patterns: list[str], imgsz: int, batch_size: int, stride: int, hyp: dict | None = None,
                        augment: bool = False, workers: int = 8, shuffle: bool = True, seed: int = 0,
                        single_cls: bool = False, prefix: str = "", rank: int = -1, world_size: int = 1,
                        nc: int | None = None, quad: bool = False, buffer_size: int = DEFAULT_BUFFER):
    """(loader, dataset) over the shards of `patterns` (a data YAML split); the same arguments as
    utils/dataloaders.create_dataloader where they apply, plus the rank and world size."""
    shards = resolve_shards(patterns)
    dataset = ShardDataset(shards, imgsz, hyp, augment, stride, rank, world_size, seed, shuffle, buffer_size, nc,
                           single_cls, prefix)
    per_rank = -(-shards.total // world_size)
    nw = min(os.cpu_count() or 1, workers, max(len(shards.urls) // world_size, 1), per_rank)
    LOGGER.info(f"{prefix}{len(shards.urls)} shards, {shards.total} samples ({shards.index}); "
                f"{per_rank} samples per rank per epoch, {max(nw, 1)} readers per rank")
    dataset.set_epoch(-1)  # the first iteration without set_epoch is epoch 0
    return ShardLoader(dataset, min(batch_size, per_rank), nw, quad), dataset
