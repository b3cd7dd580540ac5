"""A few plain SGD steps on random images with the YOLOv5 loss: the short training check the model tests share."""
from __future__ import annotations

import torch

from utils.loss import ComputeLoss

HYP = {"box": 0.05, "obj": 1.0, "cls": 0.5, "anchor_t": 4.0}  # YOLOv5's gains; the other keys take defaults
TARGETS = torch.tensor([[0, 3, 0.5, 0.5, 0.4, 0.3], [1, 7, 0.3, 0.6, 0.2, 0.5], [1, 1, 0.7, 0.3, 0.3, 0.3]])


def sgd_steps(model: torch.nn.Module, steps: int = 1, imgsz: int = 64, lr: float = 0.01,
              targets: torch.Tensor = TARGETS) -> list[float]:
    """Train mode, then `steps` SGD steps (trainable parameters only) on two seeded random images; the losses."""
    model.train()
    loss_fn = ComputeLoss(model.detect, HYP)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    imgs = torch.rand(2, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    losses = []
    for _ in range(steps):
        loss, items = loss_fn(model(imgs), targets)
        assert torch.isfinite(items).all(), items
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
