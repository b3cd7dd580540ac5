"""What attaches to a Trainer's hooks: early stopping, results.csv/TensorBoard, checkpoints, mosaic closing,
image-weights draws. Each is a small object with the events it listens to (`attach`)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from utils.train.loggers import TensorBoardLogger, append_results_csv

if TYPE_CHECKING:
    from utils.train.trainer import Trainer

LOGGER = logging.getLogger("yolo")


class EarlyStopping:
    """Stop when fitness has not improved for `patience` epochs (YOLOv5's rule)."""

    def __init__(self, patience: int = 100, best_fitness: float = 0.0, best_epoch: int = 0) -> None:
        self.best_fitness, self.best_epoch = best_fitness, best_epoch
        self.patience = patience if patience > 0 else float("inf")
        self.possible_stop = False

    def __call__(self, epoch: int, fi: float) -> bool:
        if fi >= self.best_fitness:
            self.best_epoch, self.best_fitness = epoch, fi
        delta = epoch - self.best_epoch
        self.possible_stop = delta >= self.patience - 1
        stop = delta >= self.patience
        if stop:
            LOGGER.info(f"Stopping training early as no improvement observed in last {self.patience} epochs. "
                        f"Best results observed at epoch {self.best_epoch}; use --patience 0 to disable.")
        return stop


class ResultsLogger:
    """results.csv (one row per epoch, columns named by the loss) and TensorBoard scalars, on the main process."""

    def __init__(self, save_dir: Path, enabled: bool) -> None:
        self.csv = save_dir / "results.csv"
        self.tb = TensorBoardLogger(save_dir, enabled=enabled)

    def attach(self, t: Trainer) -> None:
        t.hooks.add("epoch_end", self.on_epoch_end)
        t.hooks.add("train_end", lambda _t: self.tb.close())

    def on_epoch_end(self, t: Trainer, epoch: int, values: list[float], keys: tuple[str, ...], final: bool) -> None:
        append_results_csv(self.csv, epoch, values, keys)
        self.tb.log_epoch(epoch, values, keys)


class CheckpointSaver:
    """last.pt every epoch, best.pt on a new best fitness, epoch<N>.pt every --save-period epochs; with --nosave
    only the final one. Fires `checkpoint` for each file written."""

    def __init__(self, weights_dir: Path, nosave: bool, save_period: int) -> None:
        self.dir, self.nosave, self.period = weights_dir, nosave, save_period

    def attach(self, t: Trainer) -> None:
        t.hooks.add("epoch_end", self.on_epoch_end)

    def on_epoch_end(self, t: Trainer, epoch: int, values: list[float], keys: tuple[str, ...], final: bool) -> None:
        from utils.train.state import save_training_checkpoint

        if self.nosave and not final:
            return
        ckpt = t.checkpoint(epoch)
        files = [("last", self.dir / "last.pt")]
        if t.best_fitness == t.fitness:
            files.append(("best", self.dir / "best.pt"))
        if self.period > 0 and epoch % self.period == 0:
            files.append(("epoch", self.dir / f"epoch{epoch}.pt"))
        for kind, path in files:
            save_training_checkpoint(path, ckpt)
            t.hooks.fire("checkpoint", t, path=path, kind=kind)


class CloseMosaic:
    """--close-mosaic N: mosaic off for the last N epochs (workers restarted so they see it)."""

    def __init__(self, epochs_left: int) -> None:
        self.n = epochs_left

    def attach(self, t: Trainer) -> None:
        t.hooks.add("epoch_start", self.on_epoch_start)

    def on_epoch_start(self, t: Trainer, epoch: int) -> None:
        from utils.train.setup import reset_loader

        if epoch == max(t.opts.epochs - self.n, t.start_epoch) and t.dataset.mosaic:
            LOGGER.info(f"Closing dataloader mosaic for the last {t.opts.epochs - epoch} epochs")
            t.dataset.mosaic = False
            reset_loader(t.loader)


class ImageWeights:
    """--image-weights: each epoch's images drawn on rank 0 by class weights, the same indices on every rank."""

    def attach(self, t: Trainer) -> None:
        t.hooks.add("epoch_start", self.on_epoch_start)

    def on_epoch_start(self, t: Trainer, epoch: int) -> None:
        from utils.data.image_weights import draw_indices
        from utils.train.ddp import broadcast_object
        from utils.train.setup import reset_loader

        idx = draw_indices(t.dataset.labels, len(t.names), t.maps) if t.info.main else None
        t.loader.sampler.set_indices(broadcast_object(idx, t.info))
        reset_loader(t.loader)  # workers prefetch: restart them so this epoch uses the new draw


def plot_labels_of(t: Trainer) -> None:
    """labels.jpg of the training set (train_start, main process, not on resume)."""
    from utils.plot_labels import plot_labels

    labels = [lb for lb in t.dataset.labels if len(lb)]
    if labels:
        plot_labels(np.concatenate(labels, 0), t.names, t.save_dir / "labels.jpg")
