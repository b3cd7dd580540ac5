"""Run setup for train.py: run folder, resume lookup, model (+ --weights transfer), freezing, loaders."""
from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml
from torch import nn

from models.convnext_weights import load_convnext_backbone
from utils.cli import UserFileNotFoundError, UserValueError
from utils.freeze import freeze_layers, parse_freeze_arg
from utils.train.ddp import DistInfo
from utils.train.options import TrainOptions
from utils.train.transfer import transfer_weights

LOGGER = logging.getLogger("yolo")


@contextlib.contextmanager
def main_process_first(info: DistInfo):
    """Let rank 0 do a step first (dataset generation, label caches), the other ranks after it."""
    if info.enabled and not info.main:
        dist.barrier()
    yield
    if info.enabled and info.main:
        dist.barrier()


def find_last_checkpoint(search_dir: str | Path) -> Path:
    """The most recently written last.pt under `search_dir` (for a bare --resume)."""
    found = sorted(Path(search_dir).rglob("last.pt"), key=lambda p: p.stat().st_mtime)
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
    """Model from --cfg (or the --weights YAML), with the --weights tensors that match by name and shape."""
    from models import load_checkpoint_dict
    from models.yolo import Model

    if not opts.cfg and not opts.weights:
        raise UserValueError("give --cfg (a model YAML) and/or --weights (a checkpoint)")
    anchors = round(hyp["anchors"]) if hyp.get("anchors") else None  # anchors per level (evolved as a float)
    if not opts.weights:
        return Model(opts.cfg, ch=3, nc=nc, anchors=anchors).to(device)
    ckpt = load_checkpoint_dict(opts.weights)
    model = Model(opts.cfg or ckpt["yaml"], ch=3, nc=nc, anchors=anchors)
    # A new --cfg or hyp anchors define their own anchors: keep them, as YOLOv5 does.
    exclude = ("anchor",) if (opts.cfg or anchors) else ()
    n, total = transfer_weights(model, ckpt["state_dict"], exclude)
    LOGGER.info(f"Transferred {n}/{total} items from {opts.weights}")
    return model.to(device)


def apply_freeze(model: nn.Module, opts: TrainOptions) -> list[str]:
    """--backbone-weights (official ConvNeXt layout) then --freeze N | ids | backbone; returns frozen tensor names."""
    if opts.backbone_weights:
        report = load_convnext_backbone(model, opts.backbone_weights)
        LOGGER.info(f"Backbone weights {opts.backbone_weights}: {report.summary()}")
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
    from utils.dataloaders import create_dataloader

    bs = opts.batch_size // info.world_size
    with main_process_first(info):
        loader, dataset = create_dataloader(
            data.train, imgsz, bs, gs, hyp=hyp, augment=True, cache=opts.cache, rect=opts.rect,
            workers=opts.workers, shuffle=True, seed=opts.seed, single_cls=opts.single_cls, prefix="train: ",
            distributed=info.enabled, nc=data.nc, image_weights=opts.image_weights, quad=opts.quad)
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


def reset_loader(loader: Any) -> None:
    """Restart persistent workers so a change to the dataset (e.g. mosaic off) reaches them."""
    if hasattr(loader, "iterator"):
        loader.iterator = torch.utils.data.DataLoader.__iter__(loader)
