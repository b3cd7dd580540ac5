"""Run setup of a Trainer: resume lookup, run folder, hyp, data, model (+ --weights transfer), freezing, loaders."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml
from torch import nn

from utils.cli import UserFileNotFoundError, UserValueError
from utils.freeze import freeze_layers, parse_freeze_arg
from utils.train.ddp import DistInfo
from utils.train.options import TrainOptions

LOGGER = logging.getLogger("yolo")


def find_last_checkpoint(search_dir: str | Path) -> Path:
    """The most recently written last.pt or step checkpoint last_step.pt under `search_dir` (a bare --resume)."""
    found = sorted([*Path(search_dir).rglob("last.pt"), *Path(search_dir).rglob("last_step.pt")],
                   key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserFileNotFoundError(f"--resume: no last.pt found under {search_dir}; give the path: --resume PATH")
    return found[-1]


def resume_path(opts: TrainOptions) -> Path:
    """The last.pt named by --resume (a file), or the newest one under --project."""
    if isinstance(opts.resume, str) and opts.resume not in ("", "True"):
        p = Path(opts.resume)
        if not p.is_file():
            raise UserFileNotFoundError(f"--resume: checkpoint not found: {p}")
        return p
    return find_last_checkpoint(opts.project)


def make_save_dir(opts: TrainOptions, info: DistInfo) -> Path:
    """runs/train/exp<N> chosen by rank 0 and shared with the other ranks."""
    from utils.paths import increment_path

    name = [str(increment_path(Path(opts.project) / opts.name, exist_ok=opts.exist_ok)) if info.main else None]
    if info.enabled:
        dist.broadcast_object_list(name, 0)
    return Path(name[0])


def write_yaml(path: Path, d: dict) -> None:
    """Plain YAML dump (hyp.yaml, opt.yaml)."""
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(d, f, sort_keys=False)


def build_model(opts: TrainOptions, nc: int, hyp: dict, device: torch.device) -> nn.Module:
    """The run's starting model (models/build.py: --cfg and/or --weights), then --backbone-weights, on `device`."""
    from models.build import load_backbone_weights, training_model

    anchors = round(hyp["anchors"]) if hyp.get("anchors") else None  # anchors per level (evolved as a float)
    model = training_model(opts.cfg, opts.weights, nc, anchors)
    if opts.backbone_weights:
        load_backbone_weights(model, opts.backbone_weights)
    return model.to(device)


def apply_freeze(model: nn.Module, opts: TrainOptions) -> list[str]:
    """--freeze N | ids | backbone; returns the frozen tensor names."""
    spec = parse_freeze_arg([str(x) for x in opts.freeze])
    if spec == 0:
        return []
    frozen = freeze_layers(model, spec)
    LOGGER.info(f"Frozen {len(frozen)} parameter tensors ({'backbone' if spec == 'backbone' else spec})")
    return frozen


def check_img_size(imgsz: int, gs: int) -> int:
    """imgsz rounded up to a multiple of the grid size (at least 2 * gs), with a warning when changed."""
    new = max(math.ceil(imgsz / gs) * gs, 2 * gs)
    if new != imgsz:
        LOGGER.warning(f"--imgsz {imgsz} must be a multiple of max stride {gs}, updating to {new}")
    return new


def build_loaders(opts: TrainOptions, data: Any, imgsz: int, gs: int, hyp: dict, nc: int, info: DistInfo):
    """(train loader, train dataset, val loader or None); val only on the main process.

    Label files are checked against the data YAML's classes (`data.nc`); `nc` is the model's (1 with --single-cls,
    whose labels the dataset maps to class 0 after that check)."""
    from utils.data.dataloaders import create_dataloader
    from utils.train.ddp import local_main_first

    bs = opts.batch_size // info.world_size
    if _is_shards(data.val):
        raise UserValueError(f"{data.yaml_file}: 'val' names tar shards; validation reads an image folder or list")
    if _is_shards(data.train):
        loader, dataset = _shard_loader(opts, data, imgsz, bs, gs, hyp, info)
    else:
        with local_main_first(info):  # label and image caches: once per node, on that node's disk
            loader, dataset = create_dataloader(
                data.train, imgsz, bs, gs, hyp=hyp, augment=True, cache=opts.cache, rect=opts.rect,
                workers=opts.workers, shuffle=True, seed=opts.seed, single_cls=opts.single_cls, prefix="train: ",
                distributed=info.enabled, nc=data.nc, image_weights=opts.image_weights, quad=opts.quad,
                sample_seeds=opts.deterministic)
    labels = [lb for lb in dataset.labels if len(lb)]
    mlc = int(max(lb[:, 0].max() for lb in labels)) if labels else -1
    if mlc >= nc:
        raise UserValueError(f"label class {mlc} exceeds nc={nc} in {opts.data}; classes must be 0..{nc - 1}")
    val_loader = None
    if info.main:
        val_loader = create_dataloader(
            data.val, imgsz, bs * 2, gs, hyp=hyp, cache=None if opts.noval else opts.cache, rect=True,
            workers=opts.workers * 2, pad=0.5, single_cls=opts.single_cls, prefix="val: ", nc=data.nc)[0]
    return loader, dataset, val_loader


def _is_shards(sources: list | None) -> bool:
    return any(isinstance(s, str) for s in sources or [])  # data_yaml keeps tar shard patterns as str


def _shard_loader(opts: TrainOptions, data: Any, imgsz: int, bs: int, gs: int, hyp: dict, info: DistInfo):
    """The train loader over tar shards (utils/shards); flags that need the whole dataset up front do not apply."""
    from utils.data.shards.loader import create_shard_loader

    for flag, on in (("--rect", opts.rect), ("--cache", opts.cache), ("--image-weights", opts.image_weights)):
        if on:
            raise UserValueError(f"{flag} needs an image folder; {data.yaml_file} streams tar shards")
    return create_shard_loader(data.train, imgsz, bs, gs, hyp=hyp, augment=True, workers=opts.workers,
                               seed=opts.seed, single_cls=opts.single_cls, prefix="train: ", rank=info.rank,
                               world_size=info.world_size, nc=data.nc, quad=opts.quad)


def reset_loader(loader: Any) -> None:
    """Restart persistent workers so a change to the dataset (e.g. mosaic off) reaches them."""
    if hasattr(loader, "iterator"):
        loader.iterator = torch.utils.data.DataLoader.__iter__(loader)


def resume_options(opts: TrainOptions, info: DistInfo) -> tuple[TrainOptions, dict, dict]:
    """Options saved in the checkpoint (device and workers from the command line), the checkpoint, its state."""
    from utils.train.resume import on_rank0, read_state_on_rank0
    from utils.train.step_state import resume_position

    # rank 0 finds and reads the checkpoint, the other ranks (nodes) get it from there
    path = Path(on_rank0(lambda: str(resume_path(opts)), info))
    ckpt, state = read_state_on_rank0(path, info)
    saved = TrainOptions.from_dict(state["opt"], f"{path} (train_state.opt)")
    saved.resume, saved.device, saved.workers = str(path), opts.device, opts.workers
    saved.save_dir = str(path.parent.parent)
    epoch, batch = resume_position(state)
    LOGGER.info(f"Resuming training from {path} at epoch {epoch}/{saved.epochs}" + (f", batch {batch}" if batch else ""))
    return saved, ckpt, state


def prepare_run(t: Any) -> tuple[dict | None, dict | None]:
    """Fill a Trainer's options, run folder, hyp, data, names, model, image size and loaders; returns the
    (checkpoint, train_state) being resumed, or (None, None)."""
    from models.build import model_from_cfg
    from utils.autoanchor import check_anchors
    from utils.downloads import ensure_dataset
    from utils.hyp import load_hyp, validate_hyp
    from utils.torch_utils import init_seeds

    from utils.train.ddp import local_main_first
    from utils.train.resume import auto_resume, elastic_run_id, write_run_marker

    ckpt = state = None
    t.opts = auto_resume(t.opts, t.info)  # a torchrun restart continues its run by itself
    if t.opts.resume:
        t.opts, ckpt, state = resume_options(t.opts, t.info)
    opts, info = t.opts, t.info
    t.save_dir = Path(opts.save_dir) if state else make_save_dir(opts, info)
    opts.save_dir = str(t.save_dir)
    if info.main and elastic_run_id():
        t.save_dir.mkdir(parents=True, exist_ok=True)
        write_run_marker(t.save_dir, elastic_run_id())
    if state:
        t.hyp = dict(state["hyp"])
    else:
        t.hyp = validate_hyp(t.hyp_override, "hyp") if t.hyp_override is not None else load_hyp(opts.hyp)
    if info.main:
        (t.save_dir / "weights").mkdir(parents=True, exist_ok=True)
        write_yaml(t.save_dir / "hyp.yaml", t.hyp)
        write_yaml(t.save_dir / "opt.yaml", opts.to_dict())
    if opts.deterministic:
        from utils.train.deterministic import setup_deterministic
        setup_deterministic(opts.seed, info.rank)
    else:
        init_seeds(opts.seed + 1 + info.rank)
    with local_main_first(info):  # the demo dataset's generation: once per node
        t.data = ensure_dataset(opts.data)
    t.names = ["item"] if opts.single_cls and len(t.data.names) != 1 else list(t.data.names)
    nc = 1 if opts.single_cls else t.data.nc
    if state:
        t.model = model_from_cfg(ckpt["yaml"], nc=nc).to(t.device)
    else:
        t.model = build_model(opts, nc, t.hyp, t.device)
        apply_freeze(t.model, opts)
    t.model.names = t.names
    t.gs = max(int(t.model.stride.max()), 32)
    t.imgsz = check_img_size(opts.imgsz, t.gs)
    t.loader, t.dataset, t.val_loader = build_loaders(opts, t.data, t.imgsz, t.gs, t.hyp, len(t.names), info)
    if not state and not opts.noautoanchor and len(t.dataset.labels):  # streamed shards: no label statistics
        check_anchors(t.dataset, t.model.detect, thr=t.hyp["anchor_t"], imgsz=t.imgsz)
    return ckpt, state
