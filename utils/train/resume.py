"""Resuming by itself: the run an elastic restart (torchrun --max-restarts) continues, found by the rendezvous
run id that global rank 0 records in the run folder, and the checkpoint read on rank 0 and handed to every rank
(nodes need not share the run folder)."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable, TypeVar

from utils.cli import UserError
from utils.train.ddp import DistInfo, broadcast_object
from utils.train.options import TrainOptions
from utils.train.state import read_train_state
from utils.train.step_state import newest_checkpoint

LOGGER = logging.getLogger("yolo")
RUN_MARKER = "elastic.json"
T = TypeVar("T")


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
    found = [m.parent for m in Path(project).glob(f"*/{RUN_MARKER}") if _marker_id(m.parent) == run_id]
    return max(found, key=lambda p: (p / RUN_MARKER).stat().st_mtime) if found else None


def _restart_decision(opts: TrainOptions) -> dict:
    """Rank 0's choice on a restart: the newest checkpoint of the run folder recorded for this rendezvous
    (looked for beside a --resume checkpoint, then under --project), else that folder to start again in."""
    run_id, given = elastic_run_id(), opts.resume if isinstance(opts.resume, str) else ""
    beside = Path(given).resolve().parent.parent if given and given != "True" else None
    run = beside if beside and _marker_id(beside) == run_id else find_elastic_run(opts.project, run_id)
    ckpt = newest_checkpoint(run / "weights") if run else None
    LOGGER.warning(f"elastic restart {elastic_restart_count()} of run {run_id!r}: "
                   + (f"resuming from {ckpt}" if ckpt else f"no checkpoint yet, starting again in {run}" if run
                      else "no run folder recorded, starting as the command line says"))
    if ckpt:
        return {"resume": str(ckpt)}
    return {"resume": opts.resume, "name": run.name if run and not opts.resume else opts.name, "exist_ok": bool(run)}


def _marker_id(run: Path) -> str | None:
    try:
        return json.loads((run / RUN_MARKER).read_text(encoding="utf-8")).get("run_id")
    except (OSError, ValueError):
        return None


def auto_resume(opts: TrainOptions, info: DistInfo) -> TrainOptions:
    """On a torchrun restart (--max-restarts): resume the newest checkpoint of this rendezvous run's folder, even
    when the command line says --resume (it would start over from the older one), or start again in that folder
    when it has none yet. Rank 0 decides; every rank gets the same options."""
    if elastic_restart_count() == 0:
        return opts
    decision = broadcast_object(_restart_decision(opts) if info.main else None, info)
    opts.resume = decision["resume"]
    if "name" in decision:
        opts.name, opts.exist_ok = decision["name"], opts.exist_ok or decision["exist_ok"]
    return opts


def on_rank0(fn: Callable[[], T], info: DistInfo) -> T:
    """fn() run by global rank 0 and its result handed to every rank; a UserError it raises is raised on every
    rank (the others would otherwise wait for a result forever)."""
    got: object = None
    if info.main:
        try:
            got = fn()
        except UserError as e:
            if not info.enabled:
                raise
            got = e
    got = broadcast_object(got, info)
    if isinstance(got, UserError):
        raise got
    return got  # type: ignore[return-value]


def read_state_on_rank0(path: str | Path, info: DistInfo) -> tuple[dict, dict]:
    """(checkpoint, train_state) read by global rank 0 and broadcast: the other nodes need no copy of the run."""
    return on_rank0(lambda: read_train_state(path), info)
