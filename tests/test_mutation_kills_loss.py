"""utils/loss.py: autobalance's update formula, the pos_weight hyps and the class loss from two classes on.

Written against mutants that survived tests/test_loss.py (docs/mutation_testing.md).
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F

from utils.loss import ComputeLoss

HYP = {"box": 0.05, "cls": 0.5, "obj": 1.0, "anchor_t": 4.0}


def _head(nc: int) -> SimpleNamespace:
    anchors = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [8.0, 8.0]], [[1.0, 1.0], [4.0, 4.0], [0.5, 0.5]]])
    return SimpleNamespace(nc=nc, nl=2, na=3, anchors=anchors, stride=torch.tensor([8.0, 16.0]))


def _preds(nc: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, 8, 8, 5 + nc, generator=g), torch.randn(2, 3, 4, 4, 5 + nc, generator=g)]


def test_autobalance_follows_yolov5s_update() -> None:
    """balance_i <- 0.9999 balance_i + 0.0001 / obj_loss_i, then all divided by the stride-16 weight."""
    loss = ComputeLoss(_head(3), HYP, autobalance=True)
    preds = _preds(3)
    loss(preds, torch.zeros(0, 6))  # no targets: objectness loss per level = BCE against zeros
    obj = [float(F.binary_cross_entropy_with_logits(p[..., 4], torch.zeros_like(p[..., 4]))) for p in preds]
    raw = [4.0 * 0.9999 + 0.0001 / obj[0], 1.0 * 0.9999 + 0.0001 / obj[1]]
    assert abs(loss.balance[0] - raw[0] / raw[1]) < 1e-12
    assert loss.balance[1] == 1.0


def test_pos_weights_come_from_cls_pw_and_obj_pw() -> None:
    loss = ComputeLoss(_head(3), dict(HYP, cls_pw=3.0, obj_pw=0.5))
    assert loss.bce_cls.pos_weight.tolist() == [3.0] and loss.bce_obj.pos_weight.tolist() == [0.5]
    default = ComputeLoss(_head(3), HYP)
    assert default.bce_cls.pos_weight.tolist() == [1.0] and default.bce_obj.pos_weight.tolist() == [1.0]
    targets = torch.tensor([[0, 1, 0.45, 0.55, 0.25, 0.25], [1, 2, 0.3, 0.6, 0.2, 0.3]])
    a = default(_preds(3), targets)[1]
    b = loss(_preds(3), targets)[1]
    assert a[0] == b[0] and a[1] != b[1] and a[2] != b[2]  # box loss untouched, obj and cls weighted


def test_two_classes_have_a_class_loss_one_class_has_none() -> None:
    targets = torch.tensor([[0, 1, 0.45, 0.55, 0.25, 0.25]])
    two = ComputeLoss(_head(2), HYP)(_preds(2), targets)[1]
    one = ComputeLoss(_head(1), HYP)(_preds(1), torch.tensor([[0, 0, 0.45, 0.55, 0.25, 0.25]]))[1]
    assert two[2] > 0 and one[2] == 0
