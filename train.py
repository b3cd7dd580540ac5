"""Train a YOLO detector (YOLOv5 flags and behaviour).

    python train.py --data data/shapes.yaml --cfg yolov5n.yaml --weights '' --imgsz 160 --epochs 30
    python train.py --data coco128.yaml --weights yolov5n.pt --imgsz 320 --epochs 1
    python train.py --resume runs/train/exp/weights/last.pt
    python train.py --data coco128.yaml --weights yolov5n.pt --epochs 10 --evolve 300   # runs/evolve/exp
    python train.py --resume-evolve runs/evolve/exp                                    # continue it
    torchrun --nproc_per_node 2 train.py --data ... --batch-size 32      # DDP (gloo on CPU, NCCL on CUDA)
"""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from utils.cli import UserValueError
from utils.train.ddp import DistInfo
from utils.train.options import TrainOptions

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


@dataclass
class _Run:
    """Objects of one run, shared by the epoch loop and the end-of-epoch steps."""
    opts: TrainOptions
    info: DistInfo
    device: torch.device
    save_dir: Path
    hyp: dict
    data: object
    names: list[str]
    model: torch.nn.Module
    ctx: object = None
    scheduler: object = None
    val_loader: object = None
    dataset: object = None
    imgsz: int = 640
    start_epoch: int = 0
    best_fitness: float = 0.0
    results: list[float] = field(default_factory=lambda: [0.0] * 7)
    maps: np.ndarray | None = None  # per-class mAP50-95 of the last validation (--image-weights)


def _resume_options(opts: TrainOptions) -> tuple[TrainOptions, dict, dict]:
    """Options saved in the checkpoint (device and workers from the command line), the checkpoint, its state."""
    from utils.train.setup import resume_path
    from utils.train.state import read_train_state

    path = resume_path(opts)
    ckpt, state = read_train_state(path)
    saved = TrainOptions.from_dict(state["opt"], f"{path} (train_state.opt)")
    saved.resume, saved.device, saved.workers = str(path), opts.device, opts.workers
    saved.save_dir = str(path.parent.parent)
    LOGGER.info(f"Resuming training from {path} at epoch {state['epoch'] + 1}/{saved.epochs}")
    return saved, ckpt, state


def prepare(opts: TrainOptions, info: DistInfo, device: torch.device, hyp: dict | None = None) -> _Run:
    """Options, run folder, data, model, optimizer, EMA, loaders, loss: everything before the first epoch.

    `hyp` (e.g. an evolution's mutation) replaces the --hyp file."""
    from models.yolo import Model
    from utils.downloads import ensure_dataset
    from utils.hyp import load_hyp, validate_hyp
    from utils.torch_utils import init_seeds
    from utils.train.setup import (apply_freeze, build_model, main_process_first, make_save_dir, write_yaml)

    ckpt = state = None
    if opts.resume:
        opts, ckpt, state = _resume_options(opts)
    save_dir = Path(opts.save_dir) if state else make_save_dir(opts, info)
    opts.save_dir = str(save_dir)
    hyp = dict(state["hyp"]) if state else validate_hyp(hyp, "hyp") if hyp is not None else load_hyp(opts.hyp)
    if info.main:
        (save_dir / "weights").mkdir(parents=True, exist_ok=True)
        write_yaml(save_dir / "hyp.yaml", hyp)
        write_yaml(save_dir / "opt.yaml", opts.to_dict())
    init_seeds(opts.seed + 1 + info.rank)
    with main_process_first(info):
        data = ensure_dataset(opts.data)
    names = ["item"] if opts.single_cls and len(data.names) != 1 else list(data.names)
    nc = 1 if opts.single_cls else data.nc
    if state:
        model = Model(ckpt["yaml"], ch=3, nc=nc).to(device)
    else:
        model = build_model(opts, nc, hyp, device)
        apply_freeze(model, opts)
    model.names = names
    run = _Run(opts, info, device, save_dir, hyp, data, names, model)
    _setup_training(run, state, ckpt)
    return run


def _setup_training(run: _Run, state: dict | None, ckpt: dict | None) -> None:
    """Loaders, autoanchor, optimizer, scheduler, EMA, precision, loss, DDP wrapper, loop context."""
    from utils.autoanchor import check_anchors
    from utils.ema import ModelEMA
    from utils.loss_factory import make_loss
    from utils.train.amp import Precision, check_amp
    from utils.train.ddp import wrap_ddp
    from utils.train.loop import LoopContext, default_accumulate
    from utils.train.optim import build_optimizer, describe
    from utils.train.schedule import build_scheduler, lr_lambda, warmup_iters
    from utils.train.loggers import truncate_results_csv
    from utils.train.setup import build_loaders, check_img_size
    from utils.train.state import restore

    opts, info, model, hyp = run.opts, run.info, run.model, run.hyp
    gs = max(int(model.stride.max()), 32)
    run.imgsz = check_img_size(opts.imgsz, gs)
    loader, run.dataset, run.val_loader = build_loaders(opts, run.data, run.imgsz, gs, hyp, len(run.names), info)
    if not state and not opts.noautoanchor:
        check_anchors(run.dataset, model.detect, thr=hyp["anchor_t"], imgsz=run.imgsz)
    if not state and info.main and not opts.noplots:
        _plot_labels(run)
    accumulate = opts.accumulate or default_accumulate(opts.batch_size)
    weight_decay = hyp["weight_decay"] * opts.batch_size * accumulate / 64  # decay per ~64 images
    optimizer = build_optimizer(model, opts.optimizer, hyp["lr0"], hyp["momentum"], weight_decay)
    LOGGER.info(f"optimizer: {describe(optimizer)}")
    lf = lr_lambda(opts.epochs, hyp["lrf"], opts.cos_lr)
    ema = ModelEMA(model) if info.main else None
    precision = Precision(run.device, amp=check_amp(model, run.device), bf16=opts.bf16)
    if state:
        restore(state, model, optimizer, ema or ModelEMA(model), ckpt["state_dict"], precision.scaler)
        run.start_epoch, run.best_fitness = state["epoch"] + 1, float(state.get("best_fitness", 0.0))
        run.results = list(state.get("results", run.results))[:7] or run.results
        if info.main:
            truncate_results_csv(run.save_dir / "results.csv", run.start_epoch)
    run.scheduler = build_scheduler(optimizer, opts.epochs, hyp["lrf"], opts.cos_lr, run.start_epoch)
    compute_loss = make_loss(model.detect, hyp, len(run.names), run.imgsz, opts.label_smoothing)  # the head's loss
    nb = len(loader)
    run.ctx = LoopContext(
        model=wrap_ddp(model, info, run.device, opts.sync_bn), loader=loader, optimizer=optimizer,
        compute_loss=compute_loss, ema=ema, precision=precision, hyp=hyp, lf=lf, device=run.device, dist=info,
        epochs=opts.epochs, batch_size=opts.batch_size // info.world_size, imgsz=run.imgsz, gs=gs,
        accumulate=opts.accumulate, nw=warmup_iters(hyp["warmup_epochs"], nb), multi_scale=opts.multi_scale,
        plot_dir=run.save_dir if (info.main and not opts.noplots) else None, names=run.names,
        last_opt_step=int(state.get("last_opt_step", -1)) if state else -1, quad=opts.quad)


def _plot_labels(run: _Run) -> None:
    from utils.plot_labels import plot_labels

    labels = [lb for lb in run.dataset.labels if len(lb)]
    if labels:
        plot_labels(np.concatenate(labels, 0), run.names, run.save_dir / "labels.jpg")


def _validate(run: _Run, final: bool) -> tuple[list[float], np.ndarray | None]:
    """val.run on the EMA model: (P, R, mAP50, mAP50-95, val box, obj, cls), maps."""
    import val

    ema = run.ctx.ema.ema
    results, maps, _ = val.run(
        run.data, batch_size=run.ctx.batch_size * 2, imgsz=run.imgsz, half=run.ctx.precision.dtype == torch.float16,
        model=ema, single_cls=run.opts.single_cls, dataloader=run.val_loader, save_dir=run.save_dir,
        plots=final and not run.opts.noplots, compute_loss=run.ctx.compute_loss, names=run.names)
    return [float(x) for x in results], maps


def _save(run: _Run, epoch: int, fi: float, final: bool) -> None:
    """last.pt every epoch, best.pt on a new best fitness, epoch<N>.pt every --save-period epochs."""
    from utils.torch_utils import de_parallel
    from utils.train.state import save_training_checkpoint, training_checkpoint

    if run.opts.nosave and not final:
        return
    ctx, w = run.ctx, run.save_dir / "weights"
    ckpt = training_checkpoint(
        ctx.ema.ema, de_parallel(ctx.model), run.names, epoch=epoch, best_fitness=run.best_fitness,
        ema_updates=ctx.ema.updates, optimizer=ctx.optimizer, scaler_state=ctx.precision.scaler.state_dict(),
        hyp=run.hyp, opt=run.opts.to_dict(), results=run.results)
    ckpt["train_state"]["last_opt_step"] = int(ctx.last_opt_step)
    save_training_checkpoint(w / "last.pt", ckpt)
    if run.best_fitness == fi:
        save_training_checkpoint(w / "best.pt", ckpt)
    if run.opts.save_period > 0 and epoch % run.opts.save_period == 0:
        save_training_checkpoint(w / f"epoch{epoch}.pt", ckpt)


def _end_epoch(run: _Run, epoch: int, mloss: torch.Tensor, stopper, tb) -> bool:
    """Scheduler step, validation, fitness, checkpoints, results.csv/TensorBoard; returns 'stop now'."""
    from utils.metrics import fitness
    from utils.train.loggers import append_results_csv, result_keys
    from utils.train.loop import loss_names

    lr = [g["lr"] for g in run.ctx.optimizer.param_groups]
    run.scheduler.step()
    if not run.info.main:
        return False
    run.ctx.ema.update_attr(run.model, include=("yaml", "nc", "hyp", "names", "stride"))
    final = epoch + 1 == run.opts.epochs or stopper.possible_stop
    if not run.opts.noval or final:
        run.results, run.maps = _validate(run, final)
    fi = float(fitness(np.array(run.results).reshape(1, -1))[0])
    stop = stopper(epoch, fi)
    run.best_fitness = max(run.best_fitness, fi)
    values = mloss.tolist() + run.results + lr
    keys = result_keys(loss_names(run.ctx.compute_loss))
    append_results_csv(run.save_dir / "results.csv", epoch, values, keys)
    tb.log_epoch(epoch, values, keys)
    _save(run, epoch, fi, final or stop)
    return stop


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


def _resample_images(run: _Run) -> None:
    """--image-weights: this epoch's images drawn on rank 0 by class weights, the same indices on every rank."""
    from utils.image_weights import draw_indices
    from utils.train.ddp import broadcast_object
    from utils.train.setup import reset_loader

    idx = draw_indices(run.dataset.labels, len(run.names), run.maps) if run.info.main else None
    run.ctx.loader.sampler.set_indices(broadcast_object(idx, run.info))
    reset_loader(run.ctx.loader)  # workers prefetch: restart them so this epoch uses the new draw


def _epochs(run: _Run) -> tuple[int, list[str]]:
    """The epoch loop; returns (epochs run in this process, per-rank parameter hashes)."""
    from utils.train.ddp import broadcast_flag, gather_strings, params_hash
    from utils.train.loggers import TensorBoardLogger
    from utils.train.loop import header, loss_names, train_epoch
    from utils.train.setup import reset_loader

    opts, ctx = run.opts, run.ctx
    stopper = EarlyStopping(opts.patience, run.best_fitness, max(run.start_epoch - 1, 0))
    tb = TensorBoardLogger(run.save_dir, enabled=run.info.main)
    done = 0
    try:
        for epoch in range(run.start_epoch, opts.epochs):
            if opts.close_mosaic and epoch == max(opts.epochs - opts.close_mosaic, run.start_epoch) \
                    and run.dataset.mosaic:
                LOGGER.info(f"Closing dataloader mosaic for the last {opts.epochs - epoch} epochs")
                run.dataset.mosaic = False
                reset_loader(ctx.loader)
            if opts.image_weights:
                _resample_images(run)
            if run.info.main:
                LOGGER.info("\n" + header(loss_names(ctx.compute_loss)))
            mloss = train_epoch(ctx, epoch)
            done += 1
            stop = _end_epoch(run, epoch, mloss, stopper, tb)
            if broadcast_flag(stop, run.info):
                break
    finally:
        tb.close()
    from utils.torch_utils import de_parallel
    return done, gather_strings(params_hash(de_parallel(ctx.model)), run.info)


def _finish(run: _Run, t0: float, done: int) -> tuple[Path | None, Path | None]:
    """Strip the optimizer from last/best, plot results.png; returns (last, best)."""
    from utils.train.plot_results import plot_results
    from utils.train.state import strip_checkpoint

    w = run.save_dir / "weights"
    last, best = w / "last.pt", w / "best.pt"
    LOGGER.info(f"\n{done} epochs completed in {(time.time() - t0) / 3600:.3f} hours.")
    for f in (last, best):
        if f.exists():
            strip_checkpoint(f)
            LOGGER.info(f"Optimizer stripped from {f}, {f.stat().st_size / 1e6:.1f}MB")
    if not run.opts.noplots and (run.save_dir / "results.csv").exists():
        plot_results(run.save_dir / "results.csv")
    LOGGER.info(f"Results saved to {run.save_dir}")
    return (last if last.exists() else None), (best if best.exists() else None)


def train(opts: TrainOptions, hyp: dict | None = None) -> TrainResult:
    """Run training as the options say (one process, or one rank under torchrun); `hyp` overrides --hyp."""
    import torch.distributed as dist

    from utils.torch_utils import select_device
    from utils.train.ddp import cleanup, ddp_device, dist_info, init_process_group

    opts.validate()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    info = dist_info()
    if info.enabled and opts.batch_size % info.world_size:
        raise UserValueError(f"--batch-size {opts.batch_size} must be a multiple of WORLD_SIZE {info.world_size}")
    device = ddp_device(info, select_device(opts.device))
    own_group = info.enabled and not dist.is_initialized()  # an evolution keeps one group for all generations
    init_process_group(info, device)
    try:
        t0 = time.time()
        run = prepare(opts, info, device, hyp)
        done, hashes = _epochs(run)
        if info.enabled and info.main:
            same = len(set(hashes)) == 1
            (LOGGER.info if same else LOGGER.warning)(
                f"DDP: final weights {'identical' if same else 'DIFFER'} on {len(hashes)} ranks: {hashes}")
        last = best = None
        if info.main:
            last, best = _finish(run, t0, done)
        return TrainResult(run.save_dir, last, best, run.results, run.best_fitness, run.start_epoch + done,
                           run.ctx.optimizer_steps, hashes)
    finally:
        if own_group:
            cleanup(info)


def evolve(opts: TrainOptions) -> Path:
    """--evolve / --resume-evolve: the generations of a hyperparameter evolution (utils/train/evolve_loop.py)."""
    from utils.torch_utils import select_device
    from utils.train.ddp import dist_info
    from utils.train.evolve_loop import run_evolution

    opts.validate()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    return run_evolution(opts, lambda o, hyp: train(o, hyp).results, dist_info(), select_device(opts.device))


def parse_opt(argv: list[str] | None = None) -> TrainOptions:
    """Command line -> TrainOptions (YOLOv5 flag names)."""
    d = TrainOptions()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=d.weights, help="initial weights: ours, official YOLOv5 .pt, or '' (scratch)")
    p.add_argument("--cfg", default=d.cfg, help="model YAML (path or name, e.g. yolov5n.yaml)")
    p.add_argument("--data", default=d.data, help="data YAML")
    p.add_argument("--hyp", default=d.hyp, help="hyperparameter YAML")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="total batch size over all processes")
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=d.imgsz, help="train/val image size (px)")
    p.add_argument("--rect", action="store_true", help="rectangular training batches")
    p.add_argument("--resume", nargs="?", const=True, default=False, help="resume the newest or the given last.pt")
    p.add_argument("--nosave", action="store_true", help="only save the final checkpoint")
    p.add_argument("--noval", action="store_true", help="only validate after the final epoch")
    p.add_argument("--noautoanchor", action="store_true", help="disable AutoAnchor")
    p.add_argument("--noplots", action="store_true", help="save no plot files")
    p.add_argument("--cache", nargs="?", const="ram", default=None, help="cache images in 'ram' (default) or 'disk'")
    p.add_argument("--device", default=d.device, help="cuda device, i.e. 0, or cpu")
    p.add_argument("--multi-scale", action="store_true", help="vary the image size +/- 50%%")
    p.add_argument("--single-cls", action="store_true", help="train multi-class data as one class")
    p.add_argument("--optimizer", choices=["SGD", "Adam", "AdamW"], default=d.optimizer)
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under DDP (CUDA)")
    p.add_argument("--workers", type=int, default=d.workers, help="dataloader workers per process")
    p.add_argument("--project", default=d.project)
    p.add_argument("--name", default=d.name)
    p.add_argument("--exist-ok", action="store_true", help="reuse an existing project/name folder")
    p.add_argument("--cos-lr", action="store_true", help="cosine LR schedule")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--patience", type=int, default=d.patience, help="early stopping patience (epochs)")
    p.add_argument("--freeze", nargs="+", default=d.freeze, help="freeze the first N layers, layer ids, or 'backbone'")
    p.add_argument("--backbone-weights", default=d.backbone_weights, help="pretrained ConvNeXt backbone weights")
    p.add_argument("--save-period", type=int, default=d.save_period, help="save epoch<N>.pt every N epochs")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--close-mosaic", type=int, default=d.close_mosaic, help="disable mosaic for the last N epochs")
    p.add_argument("--accumulate", type=int, default=None,
                   help="batches per optimizer step (default: round(64 / batch size) with YOLOv5's warmup ramp)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the forward pass (CPU)")
    p.add_argument("--threads", type=int, default=d.threads,
                   help="torch CPU threads (0: torch default); 1 is faster on a busy 2-core CPU")
    p.add_argument("--evolve", type=int, nargs="?", const=300, default=d.evolve,
                   help="evolve hyperparameters for N generations (300 without N) into runs/evolve/exp")
    p.add_argument("--resume-evolve", default=d.resume_evolve, help="continue the evolution in DIR (or DIR/evolve.csv)")
    p.add_argument("--image-weights", action="store_true", help="sample images by the weights of their classes")
    p.add_argument("--quad", action="store_true", help="quad dataloader: 4 images merged into one of 2x size")
    a = p.parse_args(argv)
    a.resume = a.resume if isinstance(a.resume, (bool, str)) else bool(a.resume)
    return TrainOptions.from_dict(vars(a) | {"save_dir": ""})


def main(argv: list[str] | None = None) -> int:
    """CLI entry: configure logging, train, report divergence clearly."""
    from utils.train.ddp import dist_info
    from utils.train.loop import TrainingDiverged

    info = dist_info()
    logging.basicConfig(level=logging.INFO if info.main else logging.WARNING, format="%(message)s")
    opts = parse_opt(argv)
    try:
        evolve(opts) if (opts.evolve or opts.resume_evolve) else train(opts)
    except TrainingDiverged as e:
        LOGGER.error(f"ERROR: {e}")
        return 1
    return 0


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
