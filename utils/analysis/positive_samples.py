"""Positive-sample view: which priors the training loss makes positives for which ground-truth box, per level.

The view asks the loss itself, through the loss contract (`positives(preds, targets)`, utils/loss_protocol.py),
so it shows exactly what trains: for YOLOv5's `ComputeLoss` the (cell, anchor) pairs of `build_targets` (shape
match within `anchor_t`, own cell and the two nearest neighbours); for the anchor-free head the anchor points
the TaskAlignedAssigner picks (top-k by the alignment metric among the points inside the box, utils/tal.py),
which depend on the model's own predictions, so a trained checkpoint shows a different assignment than a
freshly initialised model. The pictures draw, per image and level, the level's grid, the boxes, and every
positive prior's cell filled in the colour of the box it is assigned to.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from models.head_protocol import find_head
from utils.annotate import colors
from utils.loss_factory import make_loss


def compute_positives(model: torch.nn.Module, imgs: torch.Tensor, targets: torch.Tensor,
                      hyp: dict[str, Any]) -> tuple[list[dict[str, torch.Tensor]], list[float]]:
    """(the loss's positives per image, the level strides) for float images (B, 3, H, W) in [0, 1] and targets
    [image, class, cx, cy, w, h] normalised; the predictions are the model's own raw outputs in eval mode."""
    head = find_head(model)
    if head is None:
        raise ValueError("the model has no detection head (its last row is not a head)")
    h, w = imgs.shape[2:]
    strides = [float(s) for s in head.stride]
    if any(h % s or w % s for s in strides):
        raise ValueError(f"image size {h}x{w} is not a multiple of the strides {strides}")
    loss = make_loss(head, dict(hyp), int(head.nc), max(h, w))
    with torch.no_grad():
        _, raw = model.eval()(imgs)[:2]
        return loss.positives(raw, targets.float()), strides


def level_counts(positives: list[dict[str, torch.Tensor]], nl: int) -> np.ndarray:
    """(B, nl) number of positive pairs per image and level."""
    return np.stack([np.bincount(p["level"].cpu().numpy(), minlength=nl)[:nl] for p in positives])


def draw_level(im: np.ndarray, boxes: np.ndarray, pos: dict[str, torch.Tensor], level: int, stride: float) -> np.ndarray:
    """A BGR panel: the level's grid, each positive prior's cell filled in its box's colour, the boxes outlined.

    `boxes` (n, 5) [class, cx, cy, w, h] normalised, the image's rows of targets in order (gt_index order)."""
    panel = im.copy()
    h, w = panel.shape[:2]
    s = int(stride)
    grid = panel.copy()
    for x in range(0, w, s):
        cv2.line(grid, (x, 0), (x, h - 1), (200, 200, 200), 1)
    for y in range(0, h, s):
        cv2.line(grid, (0, y), (w - 1, y), (200, 200, 200), 1)
    panel = cv2.addWeighted(grid, 0.35, panel, 0.65, 0)
    fill = panel.copy()
    keep = (pos["level"] == level).cpu().numpy()
    centers, gts = pos["centers"].cpu().numpy()[keep], pos["gt_index"].cpu().numpy()[keep]
    for (cx, cy), g in zip(centers, gts):
        p1 = (int(cx - s / 2), int(cy - s / 2))
        p2 = (int(cx + s / 2) - 1, int(cy + s / 2) - 1)
        cv2.rectangle(fill, p1, p2, colors(int(g)), -1)
        cv2.rectangle(panel, p1, p2, colors(int(g)), 1)
    panel = cv2.addWeighted(fill, 0.45, panel, 0.55, 0)
    for g, (_, cx, cy, bw, bh) in enumerate(boxes):
        cx, cy, bw, bh = cx * w, cy * h, bw * w, bh * h
        cv2.rectangle(panel, (int(cx - bw / 2), int(cy - bh / 2)), (int(cx + bw / 2), int(cy + bh / 2)), colors(g), 2)
        cv2.circle(panel, (int(cx), int(cy)), 3, colors(g), -1)
    label = f"level {level} s{s}: {int(keep.sum())}"
    cv2.putText(panel, label, (4, 14), 0, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(panel, label, (4, 14), 0, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def draw_positives(imgs: np.ndarray, targets: np.ndarray, positives: list[dict[str, torch.Tensor]],
                   strides: list[float], max_images: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Mosaic (rows: images, columns: levels) of uint8 RGB (B, 3, H, W) images; returns (BGR mosaic, counts (B, nl))."""
    n = min(len(imgs), max_images)
    rows = []
    for b in range(n):
        im = np.ascontiguousarray(imgs[b].transpose(1, 2, 0)[..., ::-1])
        boxes = targets[targets[:, 0] == b, 1:]
        rows.append(np.concatenate([draw_level(im, boxes, positives[b], i, s) for i, s in enumerate(strides)], 1))
    return np.concatenate(rows, 0), level_counts(positives[:n], len(strides))


def legend_text(positives: list[dict[str, torch.Tensor]], strides: list[float], targets: np.ndarray,
                paths: list[str] | None = None) -> str:
    """Per level the batch's pairs; per image the pairs per level, then per box: its class and positives per level."""
    counts = level_counts(positives, len(strides))
    lines = [f"level {i} stride {s:g}: {int(counts[:, i].sum())} positive pairs in the batch"
             for i, s in enumerate(strides)]
    for b, pos in enumerate(positives):
        name = Path(paths[b]).name if paths else f"image {b}"
        lines.append(f"{name}: " + ", ".join(f"level {i} {c}" for i, c in enumerate(counts[b])))
        gi, lv = pos["gt_index"].cpu().numpy(), pos["level"].cpu().numpy()
        for g, cls in enumerate(targets[targets[:, 0] == b, 1]):
            per = [int(((gi == g) & (lv == i)).sum()) for i in range(len(strides))]
            extra = ""
            if "score" in pos and (gi == g).any():
                extra = f", best score {float(pos['score'].cpu().numpy()[gi == g].max()):.3f}"
            lines.append(f"  box {g} class {int(cls)}: {sum(per)} positives ({'/'.join(map(str, per))}){extra}")
    return "\n".join(lines)
