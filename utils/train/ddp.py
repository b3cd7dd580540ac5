"""torch.distributed for torchrun: ranks from the environment, process-group setup, gradient-sync control."""
from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


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
        """True on the process that logs, validates and writes files."""
        return self.rank in (-1, 0)


def dist_info() -> DistInfo:
    """Read the torchrun environment variables."""
    return DistInfo(int(os.getenv("RANK", -1)), int(os.getenv("LOCAL_RANK", -1)), int(os.getenv("WORLD_SIZE", 1)))


def init_process_group(info: DistInfo, device: torch.device) -> None:
    """NCCL on CUDA, gloo on CPU; a no-op outside torchrun."""
    if not info.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


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


def cleanup(info: DistInfo) -> None:
    """Destroy the process group (when this process created one)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
