"""One training epoch: warmup, multi-scale, forward/loss/backward, accumulation, optimizer step, EMA, tqdm bar."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from utils.train.amp import Precision
from utils.train.ddp import DistInfo, maybe_no_sync
from utils.train.loggers import LOSS_NAMES
from utils.train.schedule import apply_warmup, warmup_accumulate

NBS = 64  # YOLOv5's nominal batch size: one optimizer step per ~64 images by default
MAX_GRAD_NORM = 10.0
BAR_FORMAT = "{l_bar}{bar:10}{r_bar}"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; the message says where. last.pt from the previous epoch is kept."""


@dataclass
class LoopContext:
    """Everything one epoch needs (built once by train.py)."""
    model: nn.Module  # possibly wrapped in DDP
    loader: Any
    optimizer: torch.optim.Optimizer
    compute_loss: Callable
    ema: Any  # ModelEMA on the main process, None elsewhere
    precision: Precision
    hyp: dict
    lf: Callable[[float], float]
    device: torch.device
    dist: DistInfo
    epochs: int
    batch_size: int  # per process
    imgsz: int
    gs: int  # grid size (max stride)
    accumulate: int | None  # explicit --accumulate, or None for YOLOv5's warmup ramp to NBS / batch
    nw: int  # warmup iterations
    multi_scale: bool = False
    plot_dir: Path | None = None
    names: list[str] = field(default_factory=list)
    last_opt_step: int = -1
    optimizer_steps: int = 0
    quad: bool = False  # --quad: each batch image holds 4 dataset images

    def accumulate_at(self, ni: int) -> int:
        """Micro-batches per optimizer step at iteration ni."""
        if self.accumulate is not None:
            return self.accumulate
        target = NBS / self.batch_size
        return warmup_accumulate(ni, self.nw, target) if ni <= self.nw else max(round(target), 1)


def default_accumulate(batch_size: int) -> int:
    """YOLOv5: max(round(64 / batch_size), 1)."""
    return max(round(NBS / batch_size), 1)


def multi_scale_resize(imgs: torch.Tensor, imgsz: int, gs: int) -> torch.Tensor:
    """Random size in [0.5, 1.5] x imgsz (multiple of gs), bilinear resize of the batch (YOLOv5 --multi-scale)."""
    sz = random.randrange(int(imgsz * 0.5), int(imgsz * 1.5) + gs) // gs * gs
    sf = sz / max(imgs.shape[2:])
    if sf == 1:
        return imgs
    ns = [math.ceil(x * sf / gs) * gs for x in imgs.shape[2:]]
    return F.interpolate(imgs, size=ns, mode="bilinear", align_corners=False)


def optimizer_step(ctx: LoopContext) -> None:
    """Unscale, clip the gradient norm at 10, step, zero the gradients, update the EMA."""
    scaler = ctx.precision.scaler
    scaler.unscale_(ctx.optimizer)
    nn.utils.clip_grad_norm_(ctx.model.parameters(), max_norm=MAX_GRAD_NORM)
    scaler.step(ctx.optimizer)
    scaler.update()
    ctx.optimizer.zero_grad(set_to_none=True)
    ctx.optimizer_steps += 1
    if ctx.ema is not None:
        ctx.ema.update(ctx.model)


def forward_loss(ctx: LoopContext, imgs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward under autocast; the loss itself in float32."""
    with ctx.precision.autocast():
        preds = ctx.model(imgs)
    if ctx.precision.enabled:
        preds = [p.float() for p in preds]
    loss, items = ctx.compute_loss(preds, targets.to(ctx.device))
    if ctx.dist.enabled:
        loss = loss * ctx.dist.world_size  # DDP averages gradients over ranks; keep the per-image sum
    if ctx.quad:
        loss = loss * 4  # the loss scales with the batch's image count: 4x fewer (merged) images, as YOLOv5
    return loss, items


def _check_finite(loss: torch.Tensor, items: torch.Tensor, epoch: int, i: int, paths: tuple,
                  names: tuple[str, ...] = LOSS_NAMES) -> None:
    if not torch.isfinite(loss).all():
        values = ", ".join(f"{k}={v:.4g}" for k, v in zip(names, items.tolist()))
        raise TrainingDiverged(f"loss is not finite at epoch {epoch}, batch {i} ({values}; first image "
                               f"{paths[0] if paths else '?'}). Training stopped; weights/last.pt keeps the last "
                               "finished epoch. Try a lower lr0, --optimizer SGD, or check the labels.")


def _bar_text(epoch: int, epochs: int, device: torch.device, mloss: torch.Tensor, n: int, size: int) -> str:
    mem = f"{torch.cuda.memory_reserved(device) / 1e9 if device.type == 'cuda' else 0:.3g}G"
    return ("%11s" * 2 + "%11.4g" * 5) % (f"{epoch}/{epochs - 1}", mem, *mloss.tolist(), n, size)


def loss_names(compute_loss: object) -> tuple[str, ...]:
    """The names of a loss's three items (`item_names`; YOLOv5's box, obj, cls when it states none)."""
    return tuple(getattr(compute_loss, "item_names", LOSS_NAMES))


def header(names: tuple[str, ...] = LOSS_NAMES) -> str:
    """The column titles printed above each epoch's bar."""
    return ("%11s" * 7) % ("Epoch", "GPU_mem", *(f"{n}_loss" for n in names), "Instances", "Size")


def _plot_batch(ctx: LoopContext, ni: int, imgs: torch.Tensor, targets: torch.Tensor, paths: tuple) -> None:
    if ctx.plot_dir is not None and ni < 3:
        from utils.plot_labels import plot_images
        plot_images(imgs, targets, paths, ctx.plot_dir / f"train_batch{ni}.jpg", ctx.names)


def train_epoch(ctx: LoopContext, epoch: int) -> torch.Tensor:
    """Run one epoch; returns the mean loss items [box, obj, cls]. Raises TrainingDiverged on NaN/inf."""
    ctx.model.train()
    nb = len(ctx.loader)
    sampler = getattr(ctx.loader, "sampler", None)
    if ctx.dist.enabled and hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    mloss = torch.zeros(3)
    pbar = enumerate(ctx.loader)
    if ctx.dist.main:
        pbar = tqdm(pbar, total=nb, bar_format=BAR_FORMAT)
    ctx.optimizer.zero_grad(set_to_none=True)
    for i, (imgs, targets, paths, _) in pbar:
        ni = i + nb * epoch
        if ni <= ctx.nw:
            apply_warmup(ctx.optimizer, ni, ctx.nw, ctx.hyp, ctx.lf(epoch))
        accumulate = ctx.accumulate_at(ni)
        _plot_batch(ctx, ni, imgs, targets, paths)
        imgs = imgs.to(ctx.device, non_blocking=True).float() / 255
        if ctx.multi_scale:
            imgs = multi_scale_resize(imgs, ctx.imgsz, ctx.gs)
        step = ni - ctx.last_opt_step >= accumulate
        with maybe_no_sync(ctx.model, step):
            loss, items = forward_loss(ctx, imgs, targets)
            _check_finite(loss, items, epoch, i, paths, loss_names(ctx.compute_loss))
            ctx.precision.scaler.scale(loss).backward()
        if step:
            optimizer_step(ctx)
            ctx.last_opt_step = ni
        mloss = (mloss * i + items.cpu()) / (i + 1)
        if ctx.dist.main:
            pbar.set_description(_bar_text(epoch, ctx.epochs, ctx.device, mloss, targets.shape[0], imgs.shape[-1]))
    return mloss
