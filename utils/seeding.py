"""Random streams for reproducible and resumable runs: seeds derived from (seed, rank, worker, epoch, sample),
and capture/restore of the process-wide generators (python `random`, numpy's legacy global, torch CPU/CUDA) in a
form that loads with torch.load(weights_only=True)."""
from __future__ import annotations

import random

import numpy as np
import torch


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integer parts (numpy SeedSequence: nearby inputs give unrelated streams)."""
    words = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts] + [len(parts)]).generate_state(2)
    return int((int(words[0]) << 32 | int(words[1])) & (2**63 - 1))


def worker_seed(seed: int, rank: int, worker: int, epoch: int) -> int:
    """The seed of one dataloader worker in one epoch (rank -1, worker 0 for a single process in-line)."""
    return derive_seed(seed, max(rank, 0), worker, epoch)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's augmentation: the same whichever rank or worker draws it, so a resumed or
    re-sharded run augments every image as the original did."""
    return derive_seed(seed, epoch, index, 0x5A)


def capture_rng_states() -> dict:
    """The process-wide generators' states as plain data and tensors (for a checkpoint)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss": None if gauss is None else float(gauss)},
        "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_states(state: dict) -> None:
    """Put back what `capture_rng_states` returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
