"""utils/dense parts on hand-computed cases: overlaps, priors, box coders, losses, post-processing."""
from __future__ import annotations

import math

import pytest
import torch
import torchvision

from utils.dense import predict
from utils.dense.coders import DeltaXYWHBBoxCoder, DistancePointBBoxCoder
from utils.dense.losses import (CrossEntropyLoss, DistributionFocalLoss, FocalLoss, GIoULoss, IoULoss, L1Loss,
                                QualityFocalLoss, SmoothL1Loss)
from utils.dense.losses.reduce import weight_reduce_loss
from utils.dense.overlaps import bbox_overlaps
from utils.dense.predict import batched_nms, bbox_post_process, filter_scores_and_topk
from utils.dense.priors import AnchorGenerator, MlvlPointGenerator
from utils.dense.yolo_targets import yolo_to_gt

A = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
B = torch.tensor([[5.0, 5.0, 15.0, 15.0]])
LOG2 = math.log(2)


# ---------------------------------------------------------------- overlaps
def test_overlaps_hand_values():
    assert bbox_overlaps(A, B).item() == pytest.approx(25 / 175)
    assert bbox_overlaps(A, B, mode="iof").item() == pytest.approx(25 / 100)
    assert bbox_overlaps(A, B, mode="giou").item() == pytest.approx(25 / 175 - (225 - 175) / 225)
    far = torch.tensor([[20.0, 0.0, 30.0, 10.0]])
    assert bbox_overlaps(A, far, mode="giou", is_aligned=True).item() == pytest.approx(0 - (300 - 200) / 300)


def test_overlaps_match_torchvision_and_shapes():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(7, 2, generator=g) * 50
    boxes1 = torch.cat([xy, xy + 1 + torch.rand(7, 2, generator=g) * 30], 1)
    xy = torch.rand(5, 2, generator=g) * 50
    boxes2 = torch.cat([xy, xy + 1 + torch.rand(5, 2, generator=g) * 30], 1)
    torch.testing.assert_close(bbox_overlaps(boxes1, boxes2), torchvision.ops.box_iou(boxes1, boxes2))
    torch.testing.assert_close(bbox_overlaps(boxes1, boxes2, mode="giou"),
                               torchvision.ops.generalized_box_iou(boxes1, boxes2))
    torch.testing.assert_close(bbox_overlaps(boxes1[:5], boxes2, is_aligned=True),
                               torchvision.ops.box_iou(boxes1[:5], boxes2).diagonal())
    assert bbox_overlaps(boxes1, boxes2[:0]).shape == (7, 0)
    assert bbox_overlaps(boxes1[:0], boxes2[:0], is_aligned=True).shape == (0,)
    degenerate = torch.tensor([[3.0, 3.0, 3.0, 3.0]])
    assert bbox_overlaps(degenerate, degenerate).item() == 0  # union floored at eps, not divided by zero
    with pytest.raises(ValueError, match="mode"):
        bbox_overlaps(A, B, mode="dice")
    with pytest.raises(ValueError, match="as many"):
        bbox_overlaps(boxes1, boxes2, is_aligned=True)


# ---------------------------------------------------------------- priors
def test_anchor_generator_base_anchors_and_order():
    gen = AnchorGenerator(strides=[16], ratios=[0.5, 1.0, 2.0], octave_base_scale=4, scales_per_octave=2)
    assert gen.num_base_priors == [6]
    s = [4.0, 4 * 2 ** 0.5]
    base = gen.base_anchors[0]
    # scale_major: a = ratio_idx * num_scales + scale_idx; ratio = h / w
    for a, (r, sc) in enumerate([(r, sc) for r in (0.5, 1.0, 2.0) for sc in s]):
        w, h = 16 * sc / math.sqrt(r), 16 * sc * math.sqrt(r)
        torch.testing.assert_close(base[a], torch.tensor([-w / 2, -h / 2, w / 2, h / 2]))
    grid = gen.grid_priors([(2, 3)])[0]
    assert grid.shape == (2 * 3 * 6, 4)
    for y in range(2):
        for x in range(3):
            for a in range(6):
                shift = torch.tensor([x * 16.0, y * 16.0, x * 16.0, y * 16.0])
                torch.testing.assert_close(grid[(y * 3 + x) * 6 + a], base[a] + shift)


def test_anchor_generator_options():
    not_major = AnchorGenerator(strides=[8], ratios=[0.5, 2.0], scales=[1.0, 2.0], scale_major=False)
    w = [8 * sc / math.sqrt(r) for sc in (1.0, 2.0) for r in (0.5, 2.0)]  # scale outer, ratio inner
    torch.testing.assert_close(not_major.base_anchors[0][:, 2] * 2, torch.tensor(w))
    centred = AnchorGenerator(strides=[[8, 4]], ratios=[1.0], scales=[1.0], center_offset=0.5)
    assert centred.strides == [(8, 4)] and centred.base_sizes == [4]
    torch.testing.assert_close(centred.base_anchors[0], torch.tensor([[0.0, 0.0, 4.0, 4.0]]))
    torch.testing.assert_close(centred.grid_priors([(2, 1)])[0][1], torch.tensor([0.0, 4.0, 4.0, 8.0]))
    flags = centred.valid_flags([(3, 2)], (8, 8))[0]  # pad 8 px: 1 column of stride 8, 2 rows of stride 4
    assert flags.tolist() == [True, False, True, False, False, False]
    for bad in (dict(scales=[1.0], octave_base_scale=4, scales_per_octave=1), dict(),
                dict(scales=[1.0], center_offset=1.5), dict(scales=[1.0], ratios=[0.0])):
        with pytest.raises(ValueError):
            AnchorGenerator(strides=[8], **bad)
    with pytest.raises(ValueError, match="feature maps"):
        centred.grid_priors([(2, 2), (1, 1)])


def test_point_generator():
    gen = MlvlPointGenerator([8, 16], offset=0.5)
    p0, p1 = gen.grid_priors([(2, 3), (1, 2)])
    assert p0.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]
    assert p1.tolist() == [[8, 8], [24, 8]]
    ws = MlvlPointGenerator([[8, 4]], offset=0).grid_priors([(2, 1)], with_stride=True)[0]
    assert ws.tolist() == [[0, 0, 8, 4], [0, 4, 8, 4]]
    with pytest.raises(ValueError):
        MlvlPointGenerator([8], offset=2)


# ---------------------------------------------------------------- coders
def test_delta_coder_hand_values_and_roundtrip():
    coder = DeltaXYWHBBoxCoder(target_stds=[0.1, 0.1, 0.2, 0.2])
    gt = torch.tensor([[5.0, 5.0, 15.0, 25.0]])
    d = coder.encode(A, gt)
    torch.testing.assert_close(d, torch.tensor([[0.5 / 0.1, 1.0 / 0.1, 0.0, LOG2 / 0.2]]))
    torch.testing.assert_close(coder.decode(A, d), gt)
    torch.testing.assert_close(coder.decode(A, d, max_shape=(20, 12)), torch.tensor([[5.0, 5.0, 12.0, 20.0]]))
    assert coder.decode(A[:0], d[:0]).shape == (0, 4)


def test_delta_coder_clamps():
    coder = DeltaXYWHBBoxCoder()
    big = coder.decode(A, torch.tensor([[0.0, 0.0, 10.0, -10.0]]))
    ratio = 1000 / 16  # |dw| <= log(1000/16)
    torch.testing.assert_close(big[0, 2] - big[0, 0], torch.tensor(10 * ratio))
    torch.testing.assert_close(big[0, 3] - big[0, 1], torch.tensor(10 / ratio))
    ctr = DeltaXYWHBBoxCoder(add_ctr_clamp=True, ctr_clamp=4).decode(A, torch.tensor([[10.0, -10.0, 0.0, 0.0]]))
    torch.testing.assert_close(ctr, torch.tensor([[4.0, -4.0, 14.0, 6.0]]))  # centre moved by at most 4 px
    two = coder.decode(A, torch.zeros(1, 8))  # k boxes per prior
    assert two.shape == (1, 8) and two[0, 4:].tolist() == A[0].tolist()
    with pytest.raises(ValueError):
        DeltaXYWHBBoxCoder(target_stds=[0, 1, 1, 1])


def test_distance_coder():
    coder = DistancePointBBoxCoder()
    pts = torch.tensor([[5.0, 6.0]])
    d = coder.encode(pts, torch.tensor([[1.0, 2.0, 30.0, 7.0]]))
    assert d.tolist() == [[4.0, 4.0, 25.0, 1.0]]
    clamped = coder.encode(pts, torch.tensor([[1.0, 2.0, 30.0, 7.0]]), max_dis=16, eps=0.1)
    torch.testing.assert_close(clamped, torch.tensor([[4.0, 4.0, 15.9, 1.0]]))
    outside = coder.encode(pts, torch.tensor([[6.0, 2.0, 30.0, 7.0]]), max_dis=16)
    assert outside[0, 0] == 0  # clamped at 0
    torch.testing.assert_close(coder.decode(pts, d), torch.tensor([[1.0, 2.0, 30.0, 7.0]]))
    torch.testing.assert_close(coder.decode(pts, d, max_shape=(5, 20)), torch.tensor([[1.0, 2.0, 20.0, 5.0]]))
    assert DistancePointBBoxCoder(clip_border=False).decode(pts, d, max_shape=(5, 20))[0, 2] == 30
    with pytest.raises(ValueError):
        coder.decode(pts, d[:, :2])


# ---------------------------------------------------------------- losses
def test_weight_reduce_loss():
    loss = torch.tensor([1.0, 2.0, 3.0])
    assert weight_reduce_loss(loss, torch.tensor([1.0, 0.0, 1.0]), "sum").item() == 4
    assert weight_reduce_loss(loss, reduction="mean").item() == 2
    eps = torch.finfo(torch.float32).eps
    assert weight_reduce_loss(loss, reduction="mean", avg_factor=4).item() == pytest.approx(6 / (4 + eps))
    assert weight_reduce_loss(loss, reduction="none", avg_factor=4).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="avg_factor"):
        weight_reduce_loss(loss, reduction="sum", avg_factor=4)


def test_focal_loss_hand_value_and_background_label():
    fl = FocalLoss(gamma=2.0, alpha=0.25, reduction="sum")
    pred = torch.zeros(2, 3)
    pos = 0.25 * 0.5 ** 2 * LOG2  # alpha * (1-p)^2 * BCE, p = 0.5
    neg = 0.75 * 0.5 ** 2 * LOG2
    # labels: class 1, and background (= num_classes) whose target row is all zeros
    assert fl(pred, torch.tensor([1, 3])).item() == pytest.approx(pos + 5 * neg, rel=1e-6)
    w = torch.tensor([1.0, 0.0])  # per-anchor weight broadcast over the classes
    assert fl(pred, torch.tensor([1, 3]), w).item() == pytest.approx(pos + 2 * neg, rel=1e-6)
    soft = FocalLoss(reduction="mean")(pred, torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]), avg_factor=2)
    assert soft.item() == pytest.approx((pos + 5 * neg) / 2, rel=1e-6)
    with pytest.raises(ValueError):
        FocalLoss(use_sigmoid=False)


def test_quality_focal_loss_hand_value_and_forms():
    qfl = QualityFocalLoss(beta=2.0, reduction="sum")
    pred = torch.zeros(2, 2)
    labels, scores = torch.tensor([1, 2]), torch.tensor([0.6, 0.0])  # row 1 background (label 2)
    neg = 0.5 ** 2 * LOG2  # BCE(0.5, 0) * sigma^2
    pos = 0.1 ** 2 * LOG2  # BCE(0.5, 0.6) = log 2 at logit 0; |0.6 - 0.5|^2
    assert qfl(pred, (labels, scores)).item() == pytest.approx(pos + 3 * neg, rel=1e-6)
    soft = torch.tensor([[0.0, 0.6], [0.0, 0.0]])
    assert qfl(pred, soft).item() == pytest.approx(pos + 3 * neg, rel=1e-6)


def test_distribution_focal_loss():
    dfl = DistributionFocalLoss(reduction="none", loss_weight=0.5)
    logits = torch.zeros(1, 5)
    assert dfl(logits, torch.tensor([2.3])).item() == pytest.approx(0.5 * math.log(5), rel=1e-6)
    peaked = torch.tensor([[0.0, 0.0, 5.0, 5.0, 0.0]])
    ce = torch.nn.functional.cross_entropy
    want = ce(peaked, torch.tensor([2])) * 0.7 + ce(peaked, torch.tensor([3])) * 0.3
    assert DistributionFocalLoss()(peaked, torch.tensor([2.3])).item() == pytest.approx(want.item(), rel=1e-5)


def test_iou_losses():
    iou = 25 / 175
    for mode, want in (("linear", 1 - iou), ("square", 1 - iou ** 2), ("log", -math.log(iou))):
        assert IoULoss(mode=mode)(A, B).item() == pytest.approx(want, rel=1e-6), mode
        assert IoULoss(mode=mode)(A, A).item() == pytest.approx(0, abs=1e-6)
    assert IoULoss(linear=True).mode == "linear"
    far = torch.tensor([[100.0, 100.0, 110.0, 110.0]])
    assert IoULoss(eps=1e-6)(A, far).item() == pytest.approx(-math.log(1e-6), rel=1e-6)  # IoU clamped at eps
    giou = 25 / 175 - 50 / 225
    assert GIoULoss(loss_weight=2.0)(A, B).item() == pytest.approx(2 * (1 - giou), rel=1e-6)
    pred = A.clone().requires_grad_(True)
    zero = GIoULoss()(pred, B, weight=torch.zeros(1))
    zero.backward()
    assert zero.item() == 0 and pred.grad is not None  # no positive weight: a zero that keeps the graph
    w4 = torch.tensor([[1.0, 1.0, 3.0, 3.0]])  # a (n, 4) weight is averaged to (n,)
    assert IoULoss(mode="linear", reduction="sum")(A, B, w4).item() == pytest.approx(2 * (1 - iou), rel=1e-6)
    with pytest.raises(ValueError):
        IoULoss(mode="cubic")


def test_l1_and_smooth_l1():
    pred, target = torch.tensor([[0.0, 0.5, 3.0]]), torch.tensor([[0.0, 0.0, 1.0]])
    assert L1Loss(reduction="sum")(pred, target).item() == pytest.approx(2.5)
    assert L1Loss()(pred, target, avg_factor=5).item() == pytest.approx(0.5, rel=1e-6)
    assert L1Loss()(pred[:, :0], target[:, :0]).item() == 0
    # beta 1: 0.5 * 0.25 for |d| = 0.5 < 1, and 2 - 0.5 for |d| = 2
    assert SmoothL1Loss(beta=1.0, reduction="sum")(pred, target).item() == pytest.approx(0.125 + 1.5)
    assert SmoothL1Loss(beta=4.0, reduction="sum")(pred, target).item() == pytest.approx(0.25 / 8 + 4 / 8)
    with pytest.raises(ValueError):
        SmoothL1Loss(beta=0)
    with pytest.raises(ValueError):
        L1Loss()(pred, target[:, :2])


def test_cross_entropy_sigmoid_and_softmax():
    bce = CrossEntropyLoss(use_sigmoid=True, reduction="sum")
    pred = torch.zeros(3, 2)
    # integer labels -> one-hot; label 2 (= channels) is all-zero; -1 ignored (weight 0)
    assert bce(pred, torch.tensor([0, 2, -1])).item() == pytest.approx(4 * LOG2, rel=1e-6)
    soft = bce(torch.zeros(2), torch.tensor([0.3, 1.0]))  # same-shape soft targets, as YOLOX and centerness
    assert soft.item() == pytest.approx(2 * LOG2, rel=1e-6)
    avg = CrossEntropyLoss(use_sigmoid=True, avg_non_ignore=True)(pred, torch.tensor([0, 2, -1]))
    assert avg.item() == pytest.approx(4 * LOG2 / 4, rel=1e-6)  # mean over the 4 non-ignored entries
    ce = CrossEntropyLoss(reduction="mean", class_weight=[1.0, 3.0])
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    want = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]), weight=torch.tensor([1.0, 3.0]),
                                             reduction="none").mean()
    assert ce(logits, torch.tensor([0, 1])).item() == pytest.approx(want.item(), rel=1e-6)


# ---------------------------------------------------------------- post-processing
def test_filter_scores_and_topk():
    scores = torch.tensor([[0.1, 0.9], [0.5, 0.05], [0.05, 0.3]])
    s, labels, keep, kept = filter_scores_and_topk(scores, 0.05, 3, {"x": torch.arange(3)})
    assert s.tolist() == pytest.approx([0.9, 0.5, 0.3]) and labels.tolist() == [1, 0, 1]
    assert keep.tolist() == [0, 1, 2] and kept["x"].tolist() == [0, 1, 2]  # 0.05 is not > 0.05
    assert len(filter_scores_and_topk(scores, 0.0, -1, {})[0]) == 6  # nms_pre < 0: no cut


def test_batched_nms_is_class_aware(monkeypatch):
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    s, keep = batched_nms(boxes, scores, torch.tensor([0, 0, 1]), 0.5)
    assert keep.tolist() == [0, 2] and s.tolist() == pytest.approx([0.9, 0.7])
    monkeypatch.setattr(predict, "NMS_SPLIT", 2)  # the per-class path for many boxes gives the same
    s2, keep2 = batched_nms(boxes, scores, torch.tensor([0, 0, 1]), 0.5)
    assert keep2.tolist() == [0, 2] and torch.equal(s, s2)
    assert batched_nms(boxes[:0], scores[:0], torch.zeros(0, dtype=torch.long), 0.5)[1].numel() == 0


def test_bbox_post_process():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 0.0, 10.0], [20.0, 20.0, 30.0, 30.0],
                          [40.0, 40.0, 50.0, 50.0]])
    scores = torch.tensor([0.5, 0.9, 0.6, 0.4])
    cfg = {"min_bbox_size": 0, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 2}
    b, s, l = bbox_post_process(boxes, scores, torch.zeros(4, dtype=torch.long), cfg,
                                score_factors=torch.tensor([1.0, 1.0, 0.5, 1.0]))
    # the zero-width box is dropped; 0.6 * 0.5 falls below 0.5 and 0.4; two kept
    assert s.tolist() == pytest.approx([0.5, 0.4]) and b.tolist() == [boxes[0].tolist(), boxes[3].tolist()]
    assert len(bbox_post_process(boxes, scores, torch.zeros(4, dtype=torch.long), {}, with_nms=False)[0]) == 4
    with pytest.raises(ValueError, match="test_cfg has no nms"):
        bbox_post_process(boxes, scores, torch.zeros(4, dtype=torch.long), {"max_per_img": 2})


def test_yolo_to_gt():
    t = torch.tensor([[0, 2, 0.5, 0.5, 0.5, 0.25], [1, 0, 0.25, 0.75, 0.1, 0.1]])
    boxes, labels = yolo_to_gt(t, 3, (200, 400))  # (h, w)
    torch.testing.assert_close(boxes[0], torch.tensor([[100.0, 75.0, 300.0, 125.0]]))
    torch.testing.assert_close(boxes[1], torch.tensor([[80.0, 140.0, 120.0, 160.0]]))
    assert boxes[2].shape == (0, 4) and labels[2].shape == (0,) and labels[0].tolist() == [2]
    assert labels[0].dtype == torch.long
    degenerate = torch.cat([t, torch.tensor([[0, 1, 0.5, 0.5, 0.0, 0.2], [0, 1, 0.5, 0.5, 0.01, 0.2]])])
    kept, kept_labels = yolo_to_gt(degenerate, 2, 100)  # zero width dropped; 1 px kept unless min_size >= 1
    assert len(kept[0]) == 2 and kept_labels[0].tolist() == [2, 1]
    assert len(yolo_to_gt(degenerate, 2, 100, min_size=1.0)[0][0]) == 1
    with pytest.raises(ValueError, match="image index"):
        yolo_to_gt(t, 1, 64)
    with pytest.raises(ValueError, match=r"\(n, 6\)"):
        yolo_to_gt(t[:, :5], 2, 64)
