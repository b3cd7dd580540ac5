"""--deterministic: seeds and algorithm settings under which a run, killed and resumed, ends with the weights of
the same run never killed (on the CPU; on CUDA as far as torch's deterministic kernels reach)."""
from __future__ import annotations

import logging
import os

import torch

from utils.torch_utils import init_seeds

LOGGER = logging.getLogger("yolo")


def setup_deterministic(seed: int, rank: int = -1) -> None:
    """Seed every generator from (seed, rank) and ask torch for deterministic algorithms only.

    Augmentation is seeded per sample by the data order (utils/data/data_order.py), not per process, so the
    number of workers does not change it. Ops without a deterministic kernel warn (torch's warn_only) rather than
    stop training."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before the first cuBLAS call
    init_seeds(seed + 1 + rank, deterministic=True)
    torch.backends.cudnn.benchmark = False
    LOGGER.info(f"deterministic: seed {seed + 1 + rank}, torch deterministic algorithms on")

