"""The Trainer: one object owns a training run (model, EMA, optimizer, scheduler, precision, loaders, loss, run
folder and checkpoint state) and fires named hooks (utils/train/hooks.py) that loggers, plots, early stopping and
checkpointing attach to (utils/train/callbacks.py). train.py parses options, builds one and calls `fit`."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from torch import nn

from utils.train.ddp import DistInfo
from utils.train.hooks import Hooks
from utils.train.options import TrainOptions

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

    from utils.data.data_yaml import DataConfig
    from utils.data.dataloaders import LoadImagesAndLabels
    from utils.ema import ModelEMA
    from utils.train.amp import Precision
    from utils.train.callbacks import EarlyStopping

LOGGER = logging.getLogger("yolo")


@dataclass
class TrainResult:
    """What a finished run produced."""
    save_dir: Path
    last: Path | None
    best: Path | None
    results: list[float]
    best_fitness: float
    epochs_done: int
    optimizer_steps: int
    rank_hashes: list[str] = field(default_factory=list)


class Trainer:
    """One training run (one process, or one rank under torchrun). `setup()` builds the parts, `fit()` runs."""

    def __init__(self, opts: TrainOptions, info: DistInfo | None = None, device: torch.device | None = None,
                 hyp: dict | None = None) -> None:
        self.opts, self.info = opts, info or DistInfo()
        self.device = device or torch.device("cpu")
        self.hyp_override = hyp  # e.g. an evolution's mutation, instead of the --hyp file
        self.hooks = Hooks()
        # built by setup()
        self.save_dir: Path = Path(opts.save_dir or ".")
        self.hyp: dict = dict(hyp or {})
        self.data: DataConfig | None = None
        self.names: list[str] = []
        self.model: nn.Module | None = None  # the raw model
        self.train_model: nn.Module | None = None  # the same, wrapped in DDP under torchrun
        self.ema: ModelEMA | None = None  # on the main process only
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.lf: Callable[[float], float] = lambda e: 1.0
        self.precision: Precision | None = None
        self.compute_loss: Callable | None = None
        self.loader: DataLoader | None = None
        self.dataset: LoadImagesAndLabels | None = None
        self.val_loader: DataLoader | None = None  # main process only
        self.imgsz, self.gs, self.nw = opts.imgsz, 32, -1
        self.batch_size = opts.batch_size // self.info.world_size  # images per process and batch
        self.plot_dir: Path | None = None  # train_batch*.jpg go here (main process, plots on)
        # progress
        self.start_epoch, self.epochs_done = 0, 0
        self.best_fitness = self.fitness = 0.0
        self.results: list[float] = [0.0] * 7
        self.maps: np.ndarray | None = None  # per-class mAP50-95 of the last validation (--image-weights)
        self.last_opt_step, self.optimizer_steps = -1, 0
        self.start_batch, self.start_mloss = 0, torch.zeros(3)  # mid-epoch resume: batches done, their mean loss
        self.mloss = torch.zeros(3)  # the running mean loss items of the epoch (set by the loop, each batch)
        self.stopper: EarlyStopping | None = None
        self.stop = False

    # ------------------------------------------------------------------ setup
    def setup(self) -> "Trainer":
        """Options (from the checkpoint on --resume), run folder, data, model, loaders, optimizer, EMA, loss,
        callbacks: everything before the first epoch."""
        from utils.train.setup import prepare_run

        ckpt, state = prepare_run(self)
        self.batch_size = self.opts.batch_size // self.info.world_size
        self.plot_dir = self.save_dir if (self.info.main and not self.opts.noplots) else None
        self._setup_optimization(state, ckpt)
        self._attach_callbacks(state is not None)
        if state and state.get("mid_epoch"):  # last, so that nothing set up after it draws from them
            from utils.train.step_state import restore_rng
            restore_rng(state, self.info.rank, self.info.world_size)
        return self

    def _setup_optimization(self, state: dict | None, ckpt: dict | None) -> None:
        from utils.ema import ModelEMA
        from utils.loss_factory import make_loss
        from utils.train.amp import Precision, check_amp
        from utils.train.ddp import wrap_ddp
        from utils.train.loggers import truncate_results_csv
        from utils.train.loop import NBS, default_accumulate
        from utils.train.optim import build_optimizer, describe
        from utils.train.schedule import build_scheduler, lr_lambda, warmup_iters
        from utils.train.state import restore

        opts, hyp, model = self.opts, self.hyp, self.model
        accumulate = opts.accumulate or default_accumulate(opts.batch_size)
        weight_decay = hyp["weight_decay"] * opts.batch_size * accumulate / NBS  # decay per ~NBS images
        self.optimizer = build_optimizer(model, opts.optimizer, hyp["lr0"], hyp["momentum"], weight_decay)
        LOGGER.info(f"optimizer: {describe(self.optimizer)}")
        self.lf = lr_lambda(opts.epochs, hyp["lrf"], opts.cos_lr)
        self.ema = ModelEMA(model) if self.info.main else None
        self.precision = Precision(self.device, amp=check_amp(model, self.device), bf16=opts.bf16)
        if state:
            restore(state, model, self.optimizer, self.ema or ModelEMA(model), ckpt["state_dict"],
                    self.precision.scaler)
            self.start_epoch, self.best_fitness = state["epoch"] + 1, float(state.get("best_fitness", 0.0))
            self.results = list(state.get("results", self.results))[:7] or self.results
            self.last_opt_step = int(state.get("last_opt_step", -1))
            if self.info.main:
                truncate_results_csv(self.save_dir / "results.csv", self.start_epoch)
        if state and state.get("mid_epoch"):
            self.start_epoch = int(state["mid_epoch"]["epoch"])
        self.scheduler = build_scheduler(self.optimizer, opts.epochs, hyp["lrf"], opts.cos_lr, self.start_epoch)
        if state:  # the data order (and mid-epoch the next batch, its loss and learning rates) where it stopped
            from utils.train.step_state import position_loader, restore_mid_epoch
            restore_mid_epoch(self, state) if state.get("mid_epoch") else position_loader(self.loader, self.start_epoch)
        self.compute_loss = make_loss(model.detect, hyp, len(self.names), self.imgsz, opts.label_smoothing)
        self.nw = warmup_iters(hyp["warmup_epochs"], len(self.loader))
        self.train_model = wrap_ddp(model, self.info, self.device, opts.sync_bn)

    def _attach_callbacks(self, resumed: bool) -> None:
        from utils.train.callbacks import (CheckpointSaver, CloseMosaic, EarlyStopping, ImageWeights,
                                           ResultsLogger, plot_labels_of)

        opts = self.opts
        self.stopper = EarlyStopping(opts.patience, self.best_fitness, max(self.start_epoch - 1, 0))
        if opts.close_mosaic:
            CloseMosaic(opts.close_mosaic).attach(self)
        if opts.image_weights:
            ImageWeights().attach(self)
        if opts.save_period_steps:  # every rank: all hand their RNG states to rank 0
            from utils.train.step_state import StepCheckpointer
            StepCheckpointer(opts.save_period_steps).attach(self)
        if self.info.main:
            ResultsLogger(self.save_dir, enabled=True).attach(self)
            CheckpointSaver(self.save_dir / "weights", opts.nosave, opts.save_period).attach(self)
            if not resumed and not opts.noplots:
                self.hooks.add("train_start", plot_labels_of)

    # ------------------------------------------------------------------ the run
    def fit(self) -> TrainResult:
        """The epoch loop, then the final steps (stripped checkpoints, results.png) on the main process."""
        from utils.torch_utils import de_parallel
        from utils.train.ddp import broadcast_flag, gather_strings, params_hash

        t0 = time.time()
        self.hooks.fire("train_start", self)
        for epoch in range(self.start_epoch, self.opts.epochs):
            self.hooks.fire("epoch_start", self, epoch=epoch)
            mloss = self.train_epoch(epoch)
            self.epochs_done += 1
            self.end_epoch(epoch, mloss)
            if broadcast_flag(self.stop, self.info):
                break
        self.hooks.fire("train_end", self)
        hashes = gather_strings(params_hash(de_parallel(self.train_model)), self.info)
        if self.info.enabled and self.info.main:
            same = len(set(hashes)) == 1
            (LOGGER.info if same else LOGGER.warning)(
                f"DDP: final weights {'identical' if same else 'DIFFER'} on {len(hashes)} ranks: {hashes}")
        last = best = None
        if self.info.main:
            last, best = self._finish(t0)
        return TrainResult(self.save_dir, last, best, self.results, self.best_fitness,
                           self.start_epoch + self.epochs_done, self.optimizer_steps, hashes)

    def train_epoch(self, epoch: int) -> torch.Tensor:
        """One epoch (utils/train/loop.py); returns the mean loss items."""
        from utils.train.loop import header, loss_names, train_epoch

        if self.info.main:
            LOGGER.info("\n" + header(loss_names(self.compute_loss)))
        return train_epoch(self, epoch)

    def end_epoch(self, epoch: int, mloss: torch.Tensor) -> None:
        """Scheduler step; on the main process validation, fitness, early stopping and the `epoch_end` hooks
        (results.csv, TensorBoard, checkpoints)."""
        from utils.metrics import fitness
        from utils.train.loggers import result_keys
        from utils.train.loop import loss_names

        lr = [g["lr"] for g in self.optimizer.param_groups]
        self.scheduler.step()
        if not self.info.main:
            return
        self.ema.update_attr(self.model, include=("yaml", "nc", "hyp", "names", "stride"))
        final = epoch + 1 == self.opts.epochs or self.stopper.possible_stop
        if not self.opts.noval or final:
            self.results, self.maps = self.validate(final)
            self.hooks.fire("val_end", self, epoch=epoch, final=final)
        self.fitness = float(fitness(np.array(self.results).reshape(1, -1))[0])
        self.stop = self.stopper(epoch, self.fitness)
        self.best_fitness = max(self.best_fitness, self.fitness)
        values = mloss.tolist() + self.results + lr
        keys = result_keys(loss_names(self.compute_loss))
        self.hooks.fire("epoch_end", self, epoch=epoch, values=values, keys=keys, final=final or self.stop)

    def validate(self, final: bool) -> tuple[list[float], np.ndarray | None]:
        """The EMA model on the val set: (P, R, mAP50, mAP50-95, 3 val losses), per-class mAPs."""
        from utils.validation import validate

        results, maps, _ = validate(
            self.data, batch_size=self.batch_size * 2, imgsz=self.imgsz,
            half=self.precision.dtype == torch.float16, model=self.ema.ema, single_cls=self.opts.single_cls,
            dataloader=self.val_loader, save_dir=self.save_dir, plots=final and not self.opts.noplots,
            compute_loss=self.compute_loss, names=self.names)
        return [float(x) for x in results], maps

    def checkpoint(self, epoch: int) -> dict:
        """The training checkpoint of this moment (EMA weights, raw weights, optimizer, scaler, progress)."""
        from utils.torch_utils import de_parallel
        from utils.train.state import training_checkpoint

        ckpt = training_checkpoint(
            self.ema.ema, de_parallel(self.train_model), self.names, epoch=epoch, best_fitness=self.best_fitness,
            ema_updates=self.ema.updates, optimizer=self.optimizer,
            scaler_state=self.precision.scaler.state_dict(), hyp=self.hyp, opt=self.opts.to_dict(),
            results=self.results)
        ckpt["train_state"]["last_opt_step"] = int(self.last_opt_step)
        return ckpt

    def _finish(self, t0: float) -> tuple[Path | None, Path | None]:
        """Strip the optimizer from last/best, plot results.png; returns (last, best)."""
        from utils.train.plot_results import plot_results
        from utils.train.state import strip_checkpoint

        w = self.save_dir / "weights"
        last, best = w / "last.pt", w / "best.pt"
        LOGGER.info(f"\n{self.epochs_done} epochs completed in {(time.time() - t0) / 3600:.3f} hours.")
        for f in (last, best):
            if f.exists():
                strip_checkpoint(f)
                LOGGER.info(f"Optimizer stripped from {f}, {f.stat().st_size / 1e6:.1f}MB")
        if not self.opts.noplots and (self.save_dir / "results.csv").exists():
            plot_results(self.save_dir / "results.csv")
        LOGGER.info(f"Results saved to {self.save_dir}")
        return (last if last.exists() else None), (best if best.exists() else None)


def train(opts: TrainOptions, hyp: dict | None = None) -> TrainResult:
    """Run training as the options say (one process, or one rank under torchrun); `hyp` overrides --hyp."""
    import torch.distributed as dist

    from utils.cli import UserValueError
    from utils.torch_utils import select_device, set_train_threads
    from utils.train.ddp import cleanup, ddp_device, dist_info, init_process_group

    opts.validate()
    info = dist_info()
    if info.enabled and opts.batch_size % info.world_size:
        raise UserValueError(f"--batch-size {opts.batch_size} must be a multiple of WORLD_SIZE {info.world_size}")
    device = ddp_device(info, select_device(opts.device))
    LOGGER.info(f"torch threads: {set_train_threads(opts.threads, device)} (--threads)")
    own_group = info.enabled and not dist.is_initialized()  # an evolution keeps one group for all generations
    init_process_group(info, device, opts.dist_timeout)
    try:
        return Trainer(opts, info, device, hyp).setup().fit()
    finally:
        if own_group:
            cleanup(info)
