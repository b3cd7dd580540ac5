"""torch.distributed for torchrun: ranks from the environment, process-group setup, gradient-sync control."""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from utils.cli import UserError

DEFAULT_TIMEOUT_S = 1800.0  # torch's own default for gloo/NCCL collectives and for reaching the rendezvous


class RendezvousError(UserError, RuntimeError):
    """The process group could not be formed (the rendezvous endpoint cannot be reached in time)."""


@dataclass(frozen=True)
class DistInfo:
    """RANK, LOCAL_RANK, WORLD_SIZE as torchrun sets them (-1, -1, 1 without torchrun)."""
    rank: int = -1
    local_rank: int = -1
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.rank != -1

    @property
    def main(self) -> bool:
        """True on the process that logs, validates and writes files (global rank 0: run folder, checkpoints)."""
        return self.rank in (-1, 0)

    @property
    def local_main(self) -> bool:
        """True on each node's first process (LOCAL_RANK 0), which does the node's own disk work (caches)."""
        return self.local_rank in (-1, 0)


def dist_info() -> DistInfo:
    """Read the torchrun environment variables."""
    return DistInfo(int(os.getenv("RANK", -1)), int(os.getenv("LOCAL_RANK", -1)), int(os.getenv("WORLD_SIZE", 1)))


def init_process_group(info: DistInfo, device: torch.device, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """NCCL on CUDA, gloo on CPU; a no-op outside torchrun. A rendezvous (MASTER_ADDR:MASTER_PORT) not reached
    within `timeout_s` is a RendezvousError that names it."""
    if not info.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(seconds=timeout_s)
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        restart = int(os.getenv("TORCHELASTIC_RESTART_COUNT", "0") or 0)
        if restart:  # a restarted group: its own key prefix, the store still holds the dead group's addresses
            dist.init_process_group(backend, store=_restart_store(info, restart, timeout), rank=info.rank,
                                    world_size=info.world_size, timeout=timeout)
        else:
            dist.init_process_group(backend=backend, timeout=timeout)
    except dist.DistError as e:
        where = f"{os.getenv('MASTER_ADDR', '?')}:{os.getenv('MASTER_PORT', '?')}"
        raise RendezvousError(
            f"rank {info.rank} of {info.world_size}: the rendezvous at {where} was not reached within {timeout_s:g}s "
            f"({str(e).splitlines()[0]}); check that the rank-0 node is up, the address and port are right and "
            "reachable from this node, and that every node was started with the same --nnodes") from e


def _restart_store(info: DistInfo, restart: int, timeout: datetime.timedelta) -> dist.Store:
    """The store at MASTER_ADDR:MASTER_PORT as env:// makes it (the agent's when torchrun serves it), under a
    prefix per restart."""
    agent = os.getenv("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), info.world_size,
                          is_master=not agent and info.rank == 0, timeout=timeout, multi_tenant=not agent)
    return dist.PrefixStore(f"yolo/restart_{restart}", store)


@contextlib.contextmanager
def local_main_first(info: DistInfo):
    """Let each node's LOCAL_RANK 0 do a step first (dataset generation, label and image caches on that node's
    own disk), the node's other ranks after it. Every rank of the group must enter (a global barrier)."""
    if info.enabled and not info.local_main:
        dist.barrier()
    yield
    if info.enabled and info.local_main:
        dist.barrier()


def ddp_device(info: DistInfo, device: torch.device) -> torch.device:
    """Each rank's device: cuda:LOCAL_RANK on GPUs, cpu otherwise."""
    if info.enabled and device.type == "cuda":
        if torch.cuda.device_count() <= info.local_rank:
            raise ValueError(f"LOCAL_RANK {info.local_rank} needs {info.local_rank + 1} GPUs, "
                             f"found {torch.cuda.device_count()}")
        return torch.device("cuda", info.local_rank)
    return device


def wrap_ddp(model: nn.Module, info: DistInfo, device: torch.device, sync_bn: bool = False) -> nn.Module:
    """DistributedDataParallel (with SyncBatchNorm if asked and on CUDA); the bare model otherwise."""
    if not info.enabled:
        return model
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model).to(device)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, output_device=device.index if ids else None)


def maybe_no_sync(model: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """DDP's no_sync() on micro-steps that do not end in an optimizer step (gradients all-reduced once)."""
    if not sync and isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Rank 0's value of `flag` on every rank (e.g. early stopping decided after rank-0 validation)."""
    if not info.enabled:
        return flag
    box = [flag if info.rank == 0 else None]
    dist.broadcast_object_list(box, 0)
    return bool(box[0])


def broadcast_object(obj, info: DistInfo):
    """Rank 0's `obj` (any picklable value) on every rank; `obj` itself without DDP."""
    if not info.enabled:
        return obj
    box = [obj if info.rank == 0 else None]
    dist.broadcast_object_list(box, 0)
    return box[0]


def params_hash(model: nn.Module) -> str:
    """sha256 of all parameters (names and exact bytes), to compare weights across ranks."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def gather_strings(s: str, info: DistInfo) -> list[str]:
    """Every rank's string, in rank order ([s] without DDP)."""
    if not info.enabled:
        return [s]
    out: list = [None] * info.world_size
    dist.all_gather_object(out, s)
    return [str(x) for x in out]


def gather_objects(obj, info: DistInfo) -> list:
    """Every rank's `obj` (picklable), in rank order ([obj] without DDP)."""
    if not info.enabled:
        return [obj]
    out: list = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def cleanup(info: DistInfo) -> None:
    """Destroy the process group (when this process created one)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
