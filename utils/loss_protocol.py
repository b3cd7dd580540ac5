"""The contract every training loss keeps (YOLOv5's `ComputeLoss`, the anchor-free `V8DetectionLoss`, and any
other loss a head names by `loss_name`, see models/head_protocol.py and utils/loss_factory.py).

- `__call__(preds, targets)`: `preds` the head's raw training outputs, `targets` (nt, 6) rows
  [image, class, cx, cy, w, h] normalised to the input size. Returns (total (1,) times the batch size,
  detached items (len(item_names),)).
- `item_names`: the names of those items, in order ("box", "obj", "cls" or "box", "cls", "dfl"); results.csv,
  evolve.csv, TensorBoard and the console name the columns after them.
- `positives(preds, targets)`: what the loss trains on, for the analysis tools (tools/positive_samples.py); one
  dict per image of the batch, K the number of (prior, ground truth) pairs of that image:
    "centers"  (K, 2) float: the prior's centre (cell centre, anchor point) [x, y] in input pixels;
    "gt_index" (K,) long: which box, as its index among that image's rows of `targets` (in their order);
    "level"    (K,) long: the detection level (0 = the first head input);
    "score"    (K,) float, optional: the soft target the loss gives the pair (TAL's normalised metric);
    "anchor"   (K,) long, optional: the anchor box of the pair on its level (anchor-based heads).
  A prior may appear in several pairs (several anchors, or several boxes, when the loss allows it).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

POSITIVE_KEYS = ("centers", "gt_index", "level")  # every loss gives these; "score" and "anchor" are optional


@runtime_checkable
class TrainingLoss(Protocol):
    item_names: tuple[str, ...]

    def __call__(self, preds: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def positives(self, preds: list[torch.Tensor], targets: torch.Tensor) -> list[dict[str, torch.Tensor]]: ...
