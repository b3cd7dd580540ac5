"""ComputeLoss / build_targets against the official YOLOv5 v7.0 outputs and hand-made cases."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from tests.shared_data import shared_path
from utils.loss import ComputeLoss, FocalLoss, scale_loss_hyp, smooth_bce

HYP_SCRATCH_LOW = {"box": 0.05, "cls": 0.5, "cls_pw": 1.0, "obj": 1.0, "obj_pw": 1.0, "anchor_t": 4.0,
                   "fl_gamma": 0.0, "label_smoothing": 0.0}


@pytest.fixture(scope="module")
def loss_cases() -> dict:
    return torch.load(shared_path("reference", "yolov5", "loss_cases.pt"), weights_only=True)


def _head(nc: int, anchors: torch.Tensor, stride: torch.Tensor) -> SimpleNamespace:
    return SimpleNamespace(nc=nc, nl=anchors.shape[0], na=anchors.shape[1], anchors=anchors, stride=stride)


def _case_loss(case: dict) -> ComputeLoss:
    return ComputeLoss(_head(case["nc"], case["anchors_grid"], case["stride"]), case["hyp"])


@pytest.mark.parametrize("name", ["A", "B", "C"])
def test_build_targets_matches_reference(loss_cases: dict, name: str) -> None:
    case = loss_cases[name]
    tcls, tbox, indices, anch = _case_loss(case).build_targets(case["preds"], case["targets"])
    for i in range(3):
        assert torch.equal(tcls[i], case["bt_tcls"][i])
        for ours, ref in zip(indices[i], case["bt_indices"][i], strict=True):
            assert torch.equal(ours, ref)  # exact and in the same order
        torch.testing.assert_close(tbox[i], case["bt_tbox"][i], atol=1e-5, rtol=0)
        torch.testing.assert_close(anch[i], case["bt_anch"][i], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["A", "B", "C"])
def test_loss_and_gradients_match_reference(loss_cases: dict, name: str) -> None:
    case = loss_cases[name]
    preds = [p.clone().requires_grad_(True) for p in case["preds"]]
    loss, items = _case_loss(case)(preds, case["targets"])
    torch.testing.assert_close(items, case["loss_items"], rtol=1e-5, atol=0)
    torch.testing.assert_close(loss, case["loss"], rtol=1e-5, atol=0)
    assert not items.requires_grad
    loss.backward()
    for ours, ref in zip((p.grad for p in preds), case.get("grads", []), strict=False):
        torch.testing.assert_close(ours, ref, atol=1e-7, rtol=1e-4)
    if name in ("B", "C"):
        assert "grads" in case


def test_scale_loss_hyp_matches_reference_gains(loss_cases: dict) -> None:
    for name, nc in (("A", 80), ("C", 3)):
        ref = loss_cases[name]["hyp"]
        out = scale_loss_hyp(HYP_SCRATCH_LOW, nl=3, nc=nc, imgsz=320,
                             label_smoothing=ref["label_smoothing"])
        for key in ("box", "cls", "obj", "label_smoothing"):
            assert out[key] == pytest.approx(ref[key], rel=1e-12), key
    assert HYP_SCRATCH_LOW["obj"] == 1.0  # the input dict is not modified


def test_scale_loss_hyp_p6_and_missing_key() -> None:
    out = scale_loss_hyp(HYP_SCRATCH_LOW, nl=4, nc=80, imgsz=1280)
    assert out["box"] == pytest.approx(0.05 * 3 / 4)
    assert out["obj"] == pytest.approx(1.0 * 4 * 3 / 4)
    with pytest.raises(KeyError, match="obj"):
        scale_loss_hyp({"box": 1.0, "cls": 1.0}, 3, 80, 640)


def _hand_head() -> SimpleNamespace:
    """Two levels on a 64 px input: 8x8 (stride 8) and 4x4 (stride 16) grids."""
    anchors = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [8.0, 8.0]],
                            [[1.0, 1.0], [4.0, 4.0], [0.5, 0.5]]])
    return _head(3, anchors, torch.tensor([8.0, 16.0]))


def _hand_preds(bs: int = 1) -> list[torch.Tensor]:
    return [torch.zeros(bs, 3, 8, 8, 8), torch.zeros(bs, 3, 4, 4, 8)]


def test_build_targets_hand_made_cell_and_anchor_assignment() -> None:
    # Box 0.25 x 0.25 of the image = 2x2 cells on level 0 (anchors 1x1 and 2x2 within ratio 4, 8x8 is
    # exactly 4: rejected) and 1x1 cell on level 1 (anchors 1x1 and 0.5x0.5 pass, 4x4 rejected).
    # Centre (3.5, 4.5) on level 0 is the middle of a cell: no neighbour -> 1 cell per anchor.
    # Centre (1.75, 2.25) on level 1: right neighbour (x%1 >= 0.5) and upper one (y%1 < 0.5) -> 3 cells.
    loss = ComputeLoss(_hand_head(), HYP_SCRATCH_LOW)
    targets = torch.tensor([[0, 2, 3.5 / 8, 4.5 / 8, 0.25, 0.25]])
    tcls, tbox, indices, anch = loss.build_targets(_hand_preds(), targets)

    b, a, gj, gi = indices[0]
    assert a.tolist() == [0, 1] and gi.tolist() == [3, 3] and gj.tolist() == [4, 4]
    torch.testing.assert_close(tbox[0], torch.tensor([[0.5, 0.5, 2.0, 2.0]] * 2))
    torch.testing.assert_close(anch[0], torch.tensor([[1.0, 1.0], [2.0, 2.0]]))

    b, a, gj, gi = indices[1]
    assert len(b) == 6 and b.tolist() == [0] * 6 and tcls[1].tolist() == [2] * 6
    assert a.tolist() == [0, 2, 0, 2, 0, 2]  # anchor-major within each offset block
    assert list(zip(gi.tolist(), gj.tolist())) == [(1, 2), (1, 2), (1, 1), (1, 1), (2, 2), (2, 2)]
    xy = tbox[1][:, :2]
    torch.testing.assert_close(xy, torch.tensor([[0.75, 0.25]] * 2 + [[0.75, 1.25]] * 2 + [[-0.25, 0.25]] * 2))


def test_build_targets_border_centre_is_clamped_into_last_cell() -> None:
    loss = ComputeLoss(_hand_head(), HYP_SCRATCH_LOW)
    targets = torch.tensor([[0, 0, 1.0, 0.5625, 0.25, 0.25]])  # centre on the right border
    _, tbox, indices, _ = loss.build_targets(_hand_preds(), targets)
    b, a, gj, gi = indices[0]
    assert gi.max().item() == 7 and gi.min().item() == 7  # x = 8.0 -> own cell 8, clamped to 7
    assert torch.all(tbox[0][:, 0] == 1.0)


def test_loss_without_targets_is_objectness_only() -> None:
    head = _hand_head()
    preds = [p.normal_() for p in _hand_preds(bs=2)]
    loss, items = ComputeLoss(head, HYP_SCRATCH_LOW)(preds, torch.zeros(0, 6))
    assert items[0] == 0 and items[2] == 0
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expect = sum(w * bce(p[..., 4], torch.zeros_like(p[..., 4])) for w, p in zip((4.0, 1.0), preds))
    torch.testing.assert_close(items[1], expect * HYP_SCRATCH_LOW["obj"])
    torch.testing.assert_close(loss, items.sum().view(1) * 2)  # times the batch size


def test_focal_loss_is_used_and_matches_formula() -> None:
    hyp = dict(HYP_SCRATCH_LOW, fl_gamma=1.5)
    loss = ComputeLoss(_hand_head(), hyp)
    assert isinstance(loss.bce_obj, FocalLoss) and isinstance(loss.bce_cls, FocalLoss)
    x, y = torch.tensor([2.0, -1.0, 0.3]), torch.tensor([1.0, 0.0, 1.0])
    p = torch.sigmoid(x)
    p_t = y * p + (1 - y) * (1 - p)
    alpha_t = y * 0.25 + (1 - y) * 0.75
    ce = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
    torch.testing.assert_close(loss.bce_obj(x, y), (ce * alpha_t * (1 - p_t) ** 1.5).mean())


def test_smooth_bce_and_bad_input() -> None:
    assert smooth_bce(0.1) == (0.95, 0.05)
    with pytest.raises(KeyError, match="anchor_t"):
        ComputeLoss(_hand_head(), {"box": 1, "obj": 1, "cls": 1})
    with pytest.raises(ValueError, match="2 prediction levels"):
        ComputeLoss(_hand_head(), HYP_SCRATCH_LOW)(_hand_preds()[:1], torch.zeros(0, 6))
    assert math.isclose(ComputeLoss(_hand_head(), HYP_SCRATCH_LOW).balance[1], 1.0)


def test_autobalance_moves_weights_and_keeps_stride16_at_one() -> None:
    loss = ComputeLoss(_hand_head(), HYP_SCRATCH_LOW, autobalance=True)
    assert loss.ssi == 1  # the stride-16 level
    preds = [p.normal_() for p in _hand_preds(bs=2)]
    loss(preds, torch.tensor([[0, 2, 3.5 / 8, 4.5 / 8, 0.25, 0.25]]))
    assert loss.balance[1] == 1.0 and loss.balance[0] != 4.0
