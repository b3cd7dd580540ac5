"""utils/data/worker_fork.py: forked DataLoader workers never run the destructors of the parent's objects.

A worker that collected garbage it inherited ran an ONNX Runtime session's destructor and hung (val.py on an export
after other runs in one process); here a finalizer that records its process id stands in for that destructor."""
from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest
from torch.utils.data import Dataset

from tests.no_gc import gc_disabled
from utils.data.dataloaders import InfiniteDataLoader


class Finalized:
    """A reference cycle whose finalizer appends this process's id to `log`."""

    def __init__(self, log: Path) -> None:
        self.log, self.me = log, self

    def __del__(self) -> None:
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")


class CollectingDataset(Dataset):
    """Each item drops the references in `held` and runs a full collection in the worker, then gives its pid."""

    def __init__(self, held: list) -> None:
        self.held = held

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        self.held.clear()
        gc.collect()
        return os.getpid()


def finalizer_pids(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


@pytest.fixture
def no_automatic_gc():
    """Garbage stays until collected on purpose (as it may, between two automatic collections)."""
    with gc_disabled():
        yield


@pytest.mark.parametrize("kind", ["garbage before the fork", "garbage made in the worker"])
def test_workers_run_no_destructor_of_the_parent(kind, tmp_path, no_automatic_gc):
    log = tmp_path / "finalized.txt"
    held = [Finalized(log)]
    if kind == "garbage before the fork":
        held.clear()  # unreachable now, not yet collected
    loader = InfiniteDataLoader(CollectingDataset(held), batch_size=1, num_workers=1)
    worker_pid = int(next(iter(loader))[0])
    del loader
    assert worker_pid != os.getpid()
    assert finalizer_pids(log) == []  # the worker collected, but not the parent's objects
    held.clear()
    gc.collect()
    assert finalizer_pids(log) == [os.getpid()]  # the parent collects its own objects afterwards
