"""Per-image training loss of a model on a dataset, to find the hardest images.

The model runs in eval mode (BatchNorm with its running statistics, so an image's loss does not depend
on the other images of its batch) and the loss reads the raw head outputs, exactly as in training.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn as nn
from tqdm import tqdm

from utils.loss import ComputeLoss, scale_loss_hyp


@dataclass(frozen=True)
class ImageLoss:
    """Loss items (already multiplied by their gains) of one image; `total` = box + obj + cls."""

    path: str
    box: float
    obj: float
    cls: float
    n_labels: int

    @property
    def total(self) -> float:
        return self.box + self.obj + self.cls


def loss_hyp(hyp: dict[str, Any], model: nn.Module, imgsz: int) -> dict[str, Any]:
    """The hyp with the loss gains scaled for this head and image size, as the trainer does."""
    head = model.detect
    return scale_loss_hyp(hyp, nl=head.nl, nc=head.nc, imgsz=imgsz)


def per_image_losses(model: nn.Module, batches: Iterable, hyp: dict[str, Any]) -> list[ImageLoss]:
    """Loss of every image of the dataloader's (imgs, targets, paths, shapes) batches, hardest first."""
    head = model.detect
    if head is None:
        raise ValueError("the model has no Detect head, so no loss to compute")
    model = model.eval()
    compute = ComputeLoss(head, hyp)
    device = next(model.parameters()).device
    results = []
    with torch.no_grad():
        for imgs, targets, paths, _ in tqdm(batches, desc="per-image loss", leave=False):
            x = imgs.to(device).float() / 255
            _, raw = model(x)
            targets = targets.to(device)
            for k in range(x.shape[0]):
                t = targets[targets[:, 0] == k].clone()
                t[:, 0] = 0
                _, items = compute([p[k:k + 1] for p in raw], t)
                box, obj, cls = (float(v) for v in items)
                results.append(ImageLoss(str(paths[k]), box, obj, cls, int(t.shape[0])))
    return sorted(results, key=lambda r: r.total, reverse=True)


def loss_table(losses: list[ImageLoss], top: int | None = None) -> str:
    """Hardest images first: rank, total, box, obj, cls, labels, file."""
    lines = [f"{'rank':>4} {'total':>9} {'box':>9} {'obj':>9} {'cls':>9} {'labels':>6}  image"]
    for r, e in enumerate(losses[:top] if top else losses, start=1):
        lines.append(f"{r:>4} {e.total:>9.5f} {e.box:>9.5f} {e.obj:>9.5f} {e.cls:>9.5f} {e.n_labels:>6}  "
                     f"{Path(e.path).name}")
    return "\n".join(lines)
