"""Data order that a checkpoint can record and resume: the order of an epoch is a function of (seed, epoch)
(DistributedSampler's permutation, padded and dealt to ranks the same way), and a resumed epoch starts after the
samples already consumed.

With `sample_seeds`, every index carries the seed of its sample's augmentation (utils/seeding.sample_seed), so
augmentation does not depend on which worker or rank draws a sample, nor on the draws before it.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DistributedSampler

from utils.seeding import sample_seed


class SeededIndex(int):
    """A dataset index with the seed its sample's augmentation draws from (LoadImagesAndLabels reads `.seed`)."""
    seed: int

    def __new__(cls, value: int, seed: int) -> "SeededIndex":
        obj = super().__new__(cls, value)
        obj.seed = int(seed)
        return obj

    def __reduce__(self):  # through the worker index queues
        return SeededIndex, (int(self), self.seed)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """All n indices in epoch order (torch.randperm with a generator seeded seed + epoch, as DistributedSampler)."""
    if not shuffle:
        return list(range(n))
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    return torch.randperm(n, generator=g).tolist()


class ResumableSampler(DistributedSampler):
    """Each rank's share of the epoch order (padded to equal shares, as DistributedSampler); one pass per `__iter__`.

    Passes number themselves from `epoch` on: a loader that starts the next pass early (persistent workers
    prefetching) still gets the next epoch's order, and `set_epoch` for a pass already begun changes nothing.
    `load_state_dict` makes the next pass that epoch, starting after `consumed` of this rank's samples."""

    def __init__(self, n: int, rank: int = -1, world_size: int = 1, seed: int = 0, shuffle: bool = True,
                 sample_seeds: bool = False, epoch: int = 0) -> None:
        super().__init__(range(n), num_replicas=world_size, rank=max(rank, 0), shuffle=shuffle, seed=seed)
        self.n, self.world_size, self.sample_seeds = n, world_size, sample_seeds
        self.epoch, self.skip = epoch, 0

    def set_epoch(self, epoch: int) -> None:
        if epoch >= self.epoch:
            self.epoch = int(epoch)

    def __len__(self) -> int:
        return -(-self.n // self.world_size)

    def indices(self, epoch: int) -> list[int]:
        """This rank's indices of `epoch`, all of them."""
        idx = epoch_order(self.n, self.seed, epoch, self.shuffle)
        idx += idx[:len(self) * self.world_size - len(idx)]
        return idx[self.rank::self.world_size]

    def __iter__(self) -> Iterator[int]:
        epoch, skip = self.epoch, self.skip
        self.epoch, self.skip = epoch + 1, 0
        for i in self.indices(epoch)[skip:]:
            yield SeededIndex(i, sample_seed(self.seed, epoch, i)) if self.sample_seeds else i

    def state_dict(self, epoch: int, consumed: int) -> dict:
        """Where the data order stands: `consumed` samples of this rank's share of `epoch` used."""
        return {"epoch": int(epoch), "consumed": int(consumed), "seed": int(self.seed), "n": int(self.n),
                "world_size": int(self.world_size)}

    def start_at(self, epoch: int, consumed: int = 0) -> None:
        """The next pass is `epoch`, after its first `consumed` samples (a restarted loader: its iterator must be
        created after this call)."""
        self.epoch, self.skip = int(epoch), int(consumed)

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next pass is `state['epoch']`, after its first `consumed` samples."""
        if state.get("shards") or int(state["n"]) != self.n or int(state["world_size"]) != self.world_size:
            raise ValueError(f"data order saved for {state['n']} {'shard samples' if state.get('shards') else 'images'} "
                             f"on {state['world_size']} ranks, "
                             f"resumed with {self.n} on {self.world_size}: cannot continue mid-epoch")
        self.seed = int(state["seed"])
        self.start_at(state["epoch"], state["consumed"])
