"""YOLO targets (n, 6) [image, class, cx, cy, w, h] (normalised 0..1) -> per-image gt lists for the dense heads."""
from __future__ import annotations

from typing import Sequence

import torch

from utils.dense.head_config import img_hw


def yolo_to_gt(targets: torch.Tensor, batch_size: int, img_size: int | Sequence[int],
               min_size: float = 0.0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """gt_bboxes (xyxy px, (n_i, 4) float) and gt_labels ((n_i,) int64) per image; img_size is an int or (h, w).

    Boxes whose width or height in pixels is <= min_size are left out: a zero-area gt has IoU 0 with every
    prior, so MaxIoU's low-quality match would make every non-overlapping anchor its positive, and the
    delta encoding of its size is log(0) (mmdetection's data pipelines filter such boxes before the head).
    """
    if targets.dim() != 2 or targets.size(-1) != 6:
        raise ValueError(f"YOLO targets are (n, 6) [image, class, cx, cy, w, h], got {tuple(targets.shape)}")
    h, w = img_hw(img_size)
    t = targets.float()
    scale = t.new_tensor([w, h, w, h])
    cxcywh = t[:, 2:6] * scale
    xyxy = torch.cat([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], dim=1)
    image = t[:, 0].long()
    if len(image) and (image.min() < 0 or image.max() >= batch_size):
        raise ValueError(f"target image index out of range 0..{batch_size - 1}: {image.unique().tolist()}")
    keep = (cxcywh[:, 2] > min_size) & (cxcywh[:, 3] > min_size)
    xyxy, image, t = xyxy[keep], image[keep], t[keep]
    boxes = [xyxy[image == i] for i in range(batch_size)]
    labels = [t[image == i, 1].long() for i in range(batch_size)]
    return boxes, labels
