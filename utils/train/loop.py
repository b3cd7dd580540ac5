"""One training epoch of a Trainer: warmup, multi-scale, channels_last input on CPU, forward/loss/backward,
accumulation, optimizer step, EMA, tqdm bar. The functions read the trainer's parts (utils/train/trainer.py) and
keep no state of their own."""
from __future__ import annotations

import itertools
import math
import random
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from utils.train.ddp import maybe_no_sync
from utils.train.loggers import LOSS_NAMES
from utils.train.schedule import apply_warmup, warmup_accumulate

NBS = 64  # YOLOv5's nominal batch size: one optimizer step per ~64 images by default
MAX_GRAD_NORM = 10.0
BAR_FORMAT = "{l_bar}{bar:10}{r_bar}"

if TYPE_CHECKING:
    from utils.train.trainer import Trainer


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; the message says where. last.pt from the previous epoch is kept."""


def accumulate_at(ni: int, batch_size: int, nw: int, accumulate: int | None = None) -> int:
    """Micro-batches per optimizer step at iteration ni: an explicit --accumulate, or YOLOv5's warmup ramp to
    NBS / batch size."""
    if accumulate is not None:
        return accumulate
    target = NBS / batch_size
    return warmup_accumulate(ni, nw, target) if ni <= nw else max(round(target), 1)


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



def input_format(device: torch.device) -> torch.memory_format:
    """The batch's memory format: channels_last on CPU, where oneDNN's NHWC kernels make the forward and backward of
    a training step ~1.2x faster (the weights stay NCHW, so checkpoints and the EMA are unchanged); else as is."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def optimizer_step(t: Trainer) -> None:
    """Unscale, clip the gradient norm at 10, step, zero the gradients, update the EMA."""
    scaler = t.precision.scaler
    scaler.unscale_(t.optimizer)
    nn.utils.clip_grad_norm_(t.train_model.parameters(), max_norm=MAX_GRAD_NORM)
    scaler.step(t.optimizer)
    scaler.update()
    t.optimizer.zero_grad(set_to_none=True)
    t.optimizer_steps += 1
    if t.ema is not None:
        t.ema.update(t.train_model)


def forward_loss(t: Trainer, imgs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward under autocast; the loss itself in float32."""
    with t.precision.autocast():
        preds = t.train_model(imgs)
    if t.precision.enabled:
        preds = [p.float() for p in preds]
    loss, items = t.compute_loss(preds, targets.to(t.device))
    if t.info.enabled:
        loss = loss * t.info.world_size  # DDP averages gradients over ranks; keep the per-image sum
    if t.opts.quad:
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


def _plot_batch(t: Trainer, ni: int, imgs: torch.Tensor, targets: torch.Tensor, paths: tuple) -> None:
    if t.plot_dir is not None and ni < 3:
        from utils.plot_labels import plot_images
        plot_images(imgs, targets, paths, t.plot_dir / f"train_batch{ni}.jpg", t.names)


def train_epoch(t: Trainer, epoch: int) -> torch.Tensor:
    """Run one epoch; returns the mean loss items. Fires `step_end` after each batch. Raises TrainingDiverged on
    NaN/inf."""
    t.train_model.train()
    nb = len(t.loader)
    sampler = getattr(t.loader, "sampler", None)
    if t.info.enabled and hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    start, t.start_batch = t.start_batch, 0  # a resumed epoch: its first batches were done before the stop
    mloss = t.start_mloss if start else torch.zeros(3)
    pbar = enumerate(itertools.islice(t.loader, nb - start), start)
    if t.info.main:
        pbar = tqdm(pbar, total=nb, initial=start, bar_format=BAR_FORMAT)
    t.optimizer.zero_grad(set_to_none=True)
    names = loss_names(t.compute_loss)
    for i, (imgs, targets, paths, _) in pbar:
        ni = i + nb * epoch
        if ni <= t.nw:
            apply_warmup(t.optimizer, ni, t.nw, t.hyp, t.lf(epoch))
        accumulate = accumulate_at(ni, t.batch_size, t.nw, t.opts.accumulate)
        _plot_batch(t, ni, imgs, targets, paths)
        imgs = imgs.to(t.device, non_blocking=True).float() / 255
        if t.opts.multi_scale:
            imgs = multi_scale_resize(imgs, t.imgsz, t.gs)
        imgs = imgs.contiguous(memory_format=input_format(t.device))
        step = ni - t.last_opt_step >= accumulate
        with maybe_no_sync(t.train_model, step):
            loss, items = forward_loss(t, imgs, targets)
            _check_finite(loss, items, epoch, i, paths, names)
            t.precision.scaler.scale(loss).backward()
        if step:
            optimizer_step(t)
            t.last_opt_step = ni
        mloss = (mloss * i + items.cpu()) / (i + 1)
        if t.info.main:
            pbar.set_description(_bar_text(epoch, t.opts.epochs, t.device, mloss, targets.shape[0], imgs.shape[-1]))
        t.mloss = mloss
        t.hooks.fire("step_end", t, i=i, ni=ni, stepped=step)
    return mloss
