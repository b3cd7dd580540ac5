"""Step checkpoints and auto-resume: `weights/last_step.pt` every N optimizer steps (rank 0, atomic), holding
where the epoch stands (`train_state.mid_epoch`: batches done, data order, RNG states, running loss) beside what
last.pt holds; the newest resumable checkpoint of a run; and the run an elastic restart (torchrun
--max-restarts) continues, found by the rendezvous run id that rank 0 records in the run folder.

A step checkpoint's `epoch` is the last finished epoch (as in last.pt), so code that resumes at epoch boundaries
reads it unchanged; `mid_epoch.epoch` is the epoch in progress.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from models.checkpoint import CheckpointError, atomic_save
from utils.train.state import STATE_KEY, read_train_state

STEP_CHECKPOINT = "last_step.pt"
RUN_MARKER = "elastic.json"


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


def elastic_restart_count() -> int:
    """How often torchrun has restarted this worker group (0 outside torchrun and on the first start)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0) or 0)


def elastic_run_id() -> str:
    """torchrun's rendezvous id (--rdzv-id; 'none' when not given), '' outside torchrun."""
    return os.environ.get("TORCHELASTIC_RUN_ID", "")


def write_run_marker(save_dir: str | Path, run_id: str) -> None:
    """Record in the run folder which rendezvous run it belongs to (global rank 0, at the start)."""
    path = Path(save_dir) / RUN_MARKER
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"run_id": run_id}), encoding="utf-8")
    os.replace(tmp, path)


def find_elastic_run(project: str | Path, run_id: str) -> Path | None:
    """The newest run folder under `project` recorded for rendezvous `run_id` (for a restarted worker group)."""
    found = []
    for marker in Path(project).glob(f"*/{RUN_MARKER}"):
        try:
            if json.loads(marker.read_text(encoding="utf-8")).get("run_id") == run_id:
                found.append(marker.parent)
        except (OSError, ValueError):
            continue
    return max(found, key=lambda p: (p / RUN_MARKER).stat().st_mtime) if found else None
