"""Positive-sample view: the (cell, anchor) pairs `ComputeLoss.build_targets` assigns to each target, per level.

This is the debug view of what the loss trains on (the rule is documented in `ComputeLoss.build_targets`):
every target goes to each anchor of a level whose width and height ratios to it are within `anchor_t`,
in its own cell and the two neighbouring cells nearest its centre. The pictures draw, per image and level,
the grid, the target boxes and every assigned cell filled in its anchor's colour.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from utils.annotate import colors
from utils.loss import ComputeLoss

ANCHOR_COLORS = ((255, 56, 56), (56, 200, 56), (56, 120, 255), (255, 180, 0), (200, 0, 200))  # BGR per anchor


@dataclass(frozen=True)
class LevelAssignments:
    """build_targets' output on one level: image, anchor, row, column and class of every assignment."""

    stride: float
    anchors_px: np.ndarray
    b: np.ndarray
    a: np.ndarray
    gj: np.ndarray
    gi: np.ndarray
    cls: np.ndarray

    def __len__(self) -> int:
        return len(self.b)


def assign(head: Any, targets: torch.Tensor, batch: int, img_hw: tuple[int, int],
           hyp: dict[str, Any]) -> list[LevelAssignments]:
    """Run `build_targets` for a batch of `batch` images of size img_hw (targets normalised [img, cls, x, y, w, h])."""
    h, w = img_hw
    strides = [float(s) for s in head.stride]
    if any(h % s or w % s for s in strides):
        raise ValueError(f"image size {h}x{w} is not a multiple of the strides {strides}")
    preds = [torch.zeros(batch, head.na, int(h // s), int(w // s), head.no) for s in strides]
    loss_hyp = {"box": 1.0, "obj": 1.0, "cls": 1.0} | dict(hyp)
    tcls, _, indices, _ = ComputeLoss(head, loss_hyp).build_targets(preds, targets.float())
    anchors_px = (head.anchors.detach().cpu() * head.stride.detach().cpu().view(-1, 1, 1)).numpy()
    return [LevelAssignments(s, anchors_px[i], *(t.cpu().numpy() for t in indices[i]), tcls[i].cpu().numpy())
            for i, s in enumerate(strides)]


def draw_level(im: np.ndarray, targets: np.ndarray, lv: LevelAssignments, image_index: int,
               level: int) -> tuple[np.ndarray, int]:
    """A BGR panel with the level's grid, assigned cells and targets; returns (panel, cells drawn)."""
    panel = im.copy()
    h, w = panel.shape[:2]
    s = int(lv.stride)
    grid = panel.copy()
    for x in range(0, w, s):
        cv2.line(grid, (x, 0), (x, h - 1), (200, 200, 200), 1)
    for y in range(0, h, s):
        cv2.line(grid, (0, y), (w - 1, y), (200, 200, 200), 1)
    panel = cv2.addWeighted(grid, 0.35, panel, 0.65, 0)
    fill, drawn = panel.copy(), 0
    keep = lv.b == image_index
    for a, gj, gi in zip(lv.a[keep], lv.gj[keep], lv.gi[keep]):
        p1, p2 = (int(gi) * s, int(gj) * s), (int(gi + 1) * s - 1, int(gj + 1) * s - 1)
        color = ANCHOR_COLORS[int(a) % len(ANCHOR_COLORS)]
        cv2.rectangle(fill, p1, p2, color, -1)
        cv2.rectangle(panel, p1, p2, color, 1)
        drawn += 1
    panel = cv2.addWeighted(fill, 0.45, panel, 0.55, 0)
    for t in targets[targets[:, 0] == image_index]:
        cx, cy, bw, bh = t[2] * w, t[3] * h, t[4] * w, t[5] * h
        c = colors(int(t[1]))
        cv2.rectangle(panel, (int(cx - bw / 2), int(cy - bh / 2)), (int(cx + bw / 2), int(cy + bh / 2)), c, 2)
        cv2.circle(panel, (int(cx), int(cy)), 3, c, -1)
    per_anchor = "/".join(str(int((lv.a[keep] == k).sum())) for k in range(len(lv.anchors_px)))
    cv2.putText(panel, f"P{level} s{s}: {drawn} ({per_anchor})", (4, 14), 0, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(panel, f"P{level} s{s}: {drawn} ({per_anchor})", (4, 14), 0, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return panel, drawn


def draw_assignments(imgs: np.ndarray, targets: np.ndarray, levels: list[LevelAssignments],
                     max_images: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Mosaic (rows: images, columns: levels) of uint8 RGB (B, 3, H, W) images; returns (BGR mosaic, counts (B, nl))."""
    n = min(len(imgs), max_images)
    counts = np.zeros((n, len(levels)), dtype=np.int64)
    rows = []
    for b in range(n):
        im = np.ascontiguousarray(imgs[b].transpose(1, 2, 0)[..., ::-1])
        panels = []
        for i, lv in enumerate(levels):
            panel, counts[b, i] = draw_level(im, targets, lv, b, i)
            panels.append(panel)
        rows.append(np.concatenate(panels, 1))
    return np.concatenate(rows, 0), counts


def legend_text(levels: list[LevelAssignments], counts: np.ndarray, paths: list[str] | None = None) -> str:
    """Counts per image and level, with each level's anchors (cell colours: anchor 0 blue, 1 green, 2 orange)."""
    lines = []
    for i, lv in enumerate(levels):
        sizes = ", ".join(f"{w:.0f}x{h:.0f}" for w, h in lv.anchors_px)
        lines.append(f"P{i} stride {lv.stride:g}: anchors {sizes}; {len(lv)} assignments in the batch")
    for b, row in enumerate(counts):
        name = paths[b] if paths else f"image {b}"
        lines.append(f"{name}: " + ", ".join(f"P{i} {c}" for i, c in enumerate(row)))
    return "\n".join(lines)
