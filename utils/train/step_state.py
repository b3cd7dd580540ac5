"""Step checkpoints: `weights/last_step.pt` every N optimizer steps (rank 0, atomic), holding where the epoch
stands (`train_state.mid_epoch`: batches done, data order, RNG states, running loss) beside what last.pt holds;
and the newest resumable checkpoint of a run.

A step checkpoint's `epoch` is the last finished epoch (as in last.pt), so code that resumes at epoch boundaries
reads it unchanged; `mid_epoch.epoch` is the epoch in progress.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from models.checkpoint import CheckpointError, atomic_save
from utils.train.state import STATE_KEY, read_train_state

LOGGER = logging.getLogger("yolo")
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


class StepCheckpointer:
    """--save-period-steps N as a Trainer callback (`step_end`, on every rank): after every N-th optimizer step
    all ranks hand their RNG states to rank 0, which writes last_step.pt and fires `checkpoint` (kind "step")."""

    def __init__(self, every: int) -> None:
        self.every = every

    def attach(self, t) -> None:
        t.hooks.add("step_end", self.on_step_end)

    def on_step_end(self, t, i: int, ni: int, stepped: bool, **_) -> None:
        from utils.seeding import capture_rng_states
        from utils.train.ddp import gather_objects

        if not stepped or not step_due(self.every, t.optimizer_steps):
            return
        rng = gather_objects(capture_rng_states(), t.info)
        if not t.info.main:
            return
        epoch = (ni - i) // len(t.loader)
        ckpt = t.checkpoint(epoch - 1)  # the last finished epoch, as in last.pt
        data = t.loader.sampler.state_dict(epoch, (i + 1) * t.batch_size)
        mid = mid_epoch_state(epoch, i + 1, t.optimizer_steps, t.mloss, data, rng)
        path = save_step_checkpoint(t.save_dir / "weights", ckpt, mid)
        LOGGER.info(f"step checkpoint: epoch {epoch} batch {i + 1} (optimizer step {t.optimizer_steps}) -> {path}")
        t.hooks.fire("checkpoint", t, path=path, kind="step")


def restore_mid_epoch(t, state: dict) -> None:
    """A Trainer resumed from a step checkpoint continues with the next batch: the epoch in progress, the
    batches done and their mean loss, the step's learning rates, the data order (`loader.sampler`). Call after
    the scheduler is built (it sets the epoch's rates)."""
    mid = state["mid_epoch"]
    t.start_batch, t.start_mloss = int(mid["batches_done"]), torch.tensor(mid["mloss"])
    for g, saved in zip(t.optimizer.param_groups, state["optimizer"]["param_groups"]):
        g["lr"] = saved["lr"]  # mid-warmup the step's rates, not the epoch's start
    position_loader(t.loader, t.start_epoch, mid["data"])


def restore_rng(state: dict, rank: int, world_size: int) -> None:
    """This rank's RNG states of a step checkpoint (the last thing done before training goes on)."""
    from utils.seeding import restore_rng_states

    rng = state["mid_epoch"]["rng"]
    restore_rng_states(rng[max(rank, 0)] if len(rng) == world_size else rng[0])



def position_loader(loader, epoch: int, data_state: dict | None = None) -> None:
    """A resumed run's loader starts at `epoch`, or where `data_state` (a step checkpoint's) stands; its
    persistent workers, started when it was built, are restarted on that order."""
    from utils.train.setup import reset_loader

    sampler = getattr(loader, "sampler", None)
    if data_state is not None:
        sampler.load_state_dict(data_state)
    elif hasattr(sampler, "start_at"):
        sampler.start_at(epoch)
    reset_loader(loader)
