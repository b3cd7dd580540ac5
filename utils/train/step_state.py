"""Step checkpoints: `weights/last_step.pt` every N optimizer steps (rank 0, atomic), holding where the epoch
stands (`train_state.mid_epoch`: batches done, data order, RNG states, running loss) beside what last.pt holds;
and the newest resumable checkpoint of a run.

A step checkpoint's `epoch` is the last finished epoch (as in last.pt), so code that resumes at epoch boundaries
reads it unchanged; `mid_epoch.epoch` is the epoch in progress.
"""
from __future__ import annotations

from pathlib import Path

import torch

from models.checkpoint import CheckpointError, atomic_save
from utils.train.state import STATE_KEY, read_train_state

STEP_CHECKPOINT = "last_step.pt"


def step_due(every: int, optimizer_steps: int) -> bool:
    """True when a step checkpoint is due after `optimizer_steps` steps (--save-period-steps N; off for N < 1)."""
    return every > 0 and optimizer_steps > 0 and optimizer_steps % every == 0


def mid_epoch_state(epoch: int, batches_done: int, optimizer_steps: int, mloss: torch.Tensor, data: dict,
                    rng: dict) -> dict:
    """The `train_state.mid_epoch` entry of a step checkpoint."""
    return {"epoch": int(epoch), "batches_done": int(batches_done), "optimizer_steps": int(optimizer_steps),
            "mloss": [float(x) for x in mloss.tolist()], "data": dict(data), "rng": rng}


def save_step_checkpoint(weights_dir: str | Path, ckpt: dict, mid_epoch: dict) -> Path:
    """Write last_step.pt (atomically) from a training checkpoint dict and its mid-epoch state."""
    ckpt[STATE_KEY]["mid_epoch"] = mid_epoch
    return atomic_save(ckpt, Path(weights_dir) / STEP_CHECKPOINT)


def resume_position(state: dict) -> tuple[int, int]:
    """(epoch to run next, batches of it already done) of a train_state."""
    mid = state.get("mid_epoch")
    return (int(mid["epoch"]), int(mid["batches_done"])) if mid else (int(state["epoch"]) + 1, 0)


def newest_checkpoint(weights_dir: str | Path) -> Path | None:
    """The resumable checkpoint of a run that is furthest along (last.pt or last_step.pt), None if neither."""
    best, best_pos = None, None
    for name in ("last.pt", STEP_CHECKPOINT):  # on a tie last.pt (an epoch end, validated) wins
        path = Path(weights_dir) / name
        if not path.is_file():
            continue
        try:
            _, state = read_train_state(path)
        except CheckpointError:  # a finished (stripped) last.pt: nothing to resume there
            continue
        pos = resume_position(state)
        if best_pos is None or pos > best_pos:
            best, best_pos = path, pos
    return best
