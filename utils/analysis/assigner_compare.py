"""Side-by-side view of what each head's assigner makes positive on the same image (the `positives()` API of a
loss: per image the prior centres in input pixels, the target each one is assigned to, the level).

One panel per model: the image, its target boxes (one colour per target), and every positive prior as a dot in its
target's colour, larger for coarser levels; the panel's title names the head and its assigner. Assigners that
look at the predictions (SimOTA, TAL) assign what the given weights predict (an untrained model: its initial
predictions).
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import cv2
import numpy as np
import torch

from utils.annotate import colors
from utils.boxes import xywh2xyxy


def positives_of(model: Any, loss: Any, img: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """The loss's positives on one image (train-mode raw maps, no gradient, BN statistics left as they were)."""
    bn = {m: m.training for m in model.modules()}
    try:
        model.train()
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()  # the forward must not move running statistics
        with torch.no_grad():
            raw = model(img)
        return loss.positives(raw, targets)[0]
    finally:
        for m, flag in bn.items():
            m.training = flag


def assigner_name(head: Any) -> str:
    """What assigns the head's positives, as its config names it."""
    cfg = getattr(head, "cfg", None)
    if cfg is None:
        return {"tal": "TaskAlignedAssigner", "yolov5": "build_targets"}.get(head.loss_name, head.loss_name)
    train = cfg.get("train_cfg") or {}
    if "assigner" in train:
        return train["assigner"]["type"]
    return "FCOS targets" + (" (center sampling)" if cfg.get("center_sampling") else "")


def draw_panel(im_bgr: np.ndarray, targets: torch.Tensor, pos: dict[str, torch.Tensor], title: str) -> np.ndarray:
    """One panel: targets outlined, positive centres dotted in their target's colour (radius 2 + level)."""
    panel = im_bgr.copy()
    h, w = panel.shape[:2]
    boxes = xywh2xyxy(targets[:, 2:6] * torch.tensor([w, h, w, h])).round().int().tolist()
    for j, (x1, y1, x2, y2) in enumerate(boxes):
        cv2.rectangle(panel, (x1, y1), (x2, y2), colors(j), 1)
    for (x, y), j, lv in zip(pos["centers"].tolist(), pos["gt_index"].tolist(), pos["level"].tolist()):
        cv2.circle(panel, (int(round(x)), int(round(y))), 2 + int(lv), colors(int(j)), -1)
    bar = np.full((18, w, 3), 255, np.uint8)
    cv2.putText(bar, title, (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate((bar, panel), 0)


def summary_line(title: str, pos: dict[str, torch.Tensor], n_targets: int) -> str:
    per_gt = Counter(pos["gt_index"].tolist())
    per_level = Counter(pos["level"].tolist())
    return (f"{title}: {len(pos['gt_index'])} positives; per target "
            + ", ".join(str(per_gt.get(j, 0)) for j in range(n_targets))
            + "; per level " + ", ".join(f"P{i} {c}" for i, c in sorted(per_level.items())))
