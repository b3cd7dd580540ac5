"""Assigners and FCOS targets on hand-made cases: thresholds, low-quality matches, ties, ignore boxes, empty gt."""
from __future__ import annotations

import torch

from utils.dense.atss_assigner import ATSSAssigner
from utils.dense.fcos import FCOSMath
from utils.dense.fcos_targets import FCOSTargetAssigner
from utils.dense.max_iou_assigner import MaxIoUAssigner
from utils.dense.retina import RetinaMath
from utils.dense.simota_assigner import SimOTAAssigner
from utils.dense.yolox import YOLOXMath


def box(x1, y1, x2, y2):
    return [float(x1), float(y1), float(x2), float(y2)]


# ---------------------------------------------------------------- MaxIoU
GT = torch.tensor([box(0, 0, 10, 10), box(100, 100, 120, 120)])
PRIORS = torch.tensor([box(0, 0, 10, 10),  # IoU 1 with gt 0: positive
                       box(0, 0, 10, 20),  # IoU 0.5 with gt 0: positive (>= 0.5)
                       box(0, 0, 10, 22),  # IoU 100/220 = 0.4545: ignored (-1)
                       box(50, 50, 60, 60),  # IoU 0: negative
                       box(100, 100, 140, 140)])  # IoU 0.25 with gt 1: negative, but gt 1's best -> low-quality match


def test_max_iou_thresholds_and_low_quality_match():
    res = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0).assign(PRIORS, GT, torch.tensor([3, 7]))
    assert res.gt_inds.tolist() == [1, 1, -1, 0, 2]
    assert res.labels.tolist() == [3, 3, -1, -1, 7]
    torch.testing.assert_close(res.max_overlaps, torch.tensor([1.0, 0.5, 100 / 220, 0.0, 0.25]))
    no_lq = MaxIoUAssigner(0.5, 0.4, match_low_quality=False).assign(PRIORS, GT, torch.tensor([3, 7]))
    assert no_lq.gt_inds.tolist() == [1, 1, -1, 0, 0]
    strict = MaxIoUAssigner(0.5, 0.4, min_pos_iou=0.3).assign(PRIORS, GT, torch.tensor([3, 7]))
    assert strict.gt_inds[4] == 0  # gt 1's best IoU 0.25 < min_pos_iou
    ranged = MaxIoUAssigner(0.5, (0.1, 0.4)).assign(PRIORS, GT, torch.tensor([3, 7]))
    assert ranged.gt_inds.tolist() == [1, 1, -1, -1, 2]  # IoU 0 is outside [0.1, 0.4): stays ignored


def test_max_iou_ties_and_highest_iou_wins():
    gt = torch.tensor([box(0, 0, 10, 10), box(0, 0, 12, 10)])
    priors = torch.tensor([box(0, 0, 10, 10), box(0, 0, 12, 10), box(20, 0, 30, 10), box(20, 0, 30, 10)])
    res = MaxIoUAssigner(0.5, 0.4).assign(priors, gt, torch.tensor([0, 1]))
    assert res.gt_inds[:2].tolist() == [1, 2]  # each prior takes the gt it overlaps most
    gt2 = torch.tensor([box(20, 0, 30, 12)])  # both copies of prior 2 tie for this gt's best IoU
    all_ties = MaxIoUAssigner(0.9, 0.05, gt_max_assign_all=True).assign(priors, gt2, torch.tensor([5]))
    assert all_ties.gt_inds.tolist() == [0, 0, 1, 1]
    one = MaxIoUAssigner(0.9, 0.05, gt_max_assign_all=False).assign(priors, gt2, torch.tensor([5]))
    assert int((one.gt_inds == 1).sum()) == 1


def test_max_iou_ignore_boxes_and_empty_inputs():
    ignore = torch.tensor([box(45, 45, 65, 65)])
    res = MaxIoUAssigner(0.5, 0.4, ignore_iof_thr=0.5).assign(PRIORS, GT, torch.tensor([3, 7]), ignore)
    assert res.gt_inds[3] == -1  # inside an ignore box: neither positive nor negative
    all_ignored = MaxIoUAssigner(0.5, 0.4, ignore_iof_thr=0.5, match_low_quality=False).assign(
        PRIORS, GT, torch.tensor([3, 7]), torch.tensor([box(-10, -10, 200, 200)]))
    assert all_ignored.gt_inds.tolist() == [-1] * 5
    empty = MaxIoUAssigner(0.5, 0.4).assign(PRIORS, GT[:0], torch.zeros(0, dtype=torch.long))
    assert empty.gt_inds.tolist() == [0] * 5 and empty.labels.tolist() == [-1] * 5
    assert empty.max_overlaps.tolist() == [0] * 5 and empty.num_gts == 0
    none = MaxIoUAssigner(0.5, 0.4).assign(PRIORS[:0], GT, torch.tensor([3, 7]))
    assert none.gt_inds.numel() == 0


def test_retina_all_ignored_image_has_no_cls_loss():
    """Every anchor inside an ignore box: label weights all 0, so neither loss has anything to sum."""
    math = RetinaMath({"num_classes": 2, "anchor_generator": {"strides": [8, 16]},
                       "train_cfg": {"assigner": {"ignore_iof_thr": 0.5}}})
    assert math.assigner.ignore_iof_thr == 0.5 and math.assigner.pos_iou_thr == 0.5  # merged into the defaults
    sizes = [(4, 4), (2, 2)]
    gt, lab = [torch.tensor([box(4, 4, 20, 20)])], [torch.tensor([1])]
    ignore = [torch.tensor([box(-200, -200, 300, 300)])]
    _, targets = math.targets(sizes, gt, lab, 32, "cpu", gt_bboxes_ignore=ignore)
    assert targets[0].assign.gt_inds.eq(-1).all() and targets[0].label_weights.eq(0).all()
    outs = {"cls_scores": [torch.zeros(1, 9 * 2, *s, requires_grad=True) for s in sizes],
            "bbox_preds": [torch.zeros(1, 9 * 4, *s, requires_grad=True) for s in sizes]}
    ignored = math.loss_by_feat(outs, gt, lab, 32, gt_bboxes_ignore=ignore)
    assert all(float(x.detach()) == 0 for x in ignored["loss_cls"] + ignored["loss_bbox"])
    no_gt = math.loss_by_feat(outs, [torch.zeros(0, 4)], [torch.zeros(0, dtype=torch.long)], 32)
    # an image without gt: every anchor negative, cls loss = focal over all anchors x classes / 1; no bbox loss
    n = (16 + 4) * 9 * 2
    want = 0.75 * 0.25 * torch.log(torch.tensor(2.0)) * n
    torch.testing.assert_close(sum(no_gt["loss_cls"]), want)
    assert float(sum(no_gt["loss_bbox"]).detach()) == 0


# ---------------------------------------------------------------- ATSS
def _row_anchors(n: int, size: float = 8.0, step: float = 8.0) -> torch.Tensor:
    c = torch.arange(n, dtype=torch.float32) * step
    return torch.stack([c - size / 2, torch.full_like(c, -size / 2), c + size / 2, torch.full_like(c, size / 2)], 1)


def test_atss_candidates_threshold_and_centre_rule():
    anchors = _row_anchors(6)  # 8 px anchors, centres x = 0, 8, ..., 40 on y = 0
    gt = torch.tensor([box(2, -6, 14, 6)])  # centre (8, 0)
    res = ATSSAssigner(topk=3).assign(anchors, [6], gt, torch.tensor([4]))
    # candidates: centres 8 (IoU 64/144), 0 and 16 (IoU 16/192 each); threshold = mean + std = 0.412
    assert res.gt_inds.tolist() == [0, 1, 0, 0, 0, 0] and res.labels.tolist() == [-1, 4, -1, -1, -1, -1]
    torch.testing.assert_close(res.max_overlaps[1], torch.tensor(64 / 144))
    assert res.max_overlaps[[0, 2, 3, 4, 5]].eq(-100000000).all()
    wide = ATSSAssigner(topk=3).assign(anchors, [6], torch.tensor([box(5, -6, 19, 6)]), torch.tensor([4]))
    # centres 8 and 16 both IoU 56/176 with a zero third: the threshold (0.396) is above them, nobody is positive
    assert wide.gt_inds.tolist() == [0] * 6
    # the centre must be strictly inside (by more than 0.01 px): a gt whose edge sits on the anchor centres
    edge = ATSSAssigner(topk=2).assign(anchors, [6], torch.tensor([box(8, -4, 16, 4)]), torch.tensor([0]))
    assert edge.gt_inds.tolist() == [0] * 6


def test_atss_per_level_topk_and_empty_gt():
    a1, a2 = _row_anchors(4), _row_anchors(2, size=16, step=16)
    anchors = torch.cat([a1, a2])
    gt = torch.tensor([box(-6, -6, 10, 6)])
    res = ATSSAssigner(topk=9).assign(anchors, [4, 2], gt, torch.tensor([1]))  # topk capped per level
    assert res.gt_inds.shape == (6,) and (res.gt_inds > 0).any()
    empty = ATSSAssigner(topk=9).assign(anchors, [4, 2], gt[:0], torch.zeros(0, dtype=torch.long))
    assert empty.gt_inds.tolist() == [0] * 6 and empty.max_overlaps.tolist() == [0] * 6
    try:
        ATSSAssigner(topk=9).assign(anchors, [4, 1], gt, torch.tensor([1]))
    except ValueError as e:
        assert "do not add up" in str(e)
    else:
        raise AssertionError("level counts that do not add up must be refused")


def test_atss_two_gts_highest_iou_wins():
    anchors = _row_anchors(5)
    gts = torch.tensor([box(-5, -5, 5, 5), box(-4, -4, 6, 4)])  # anchor 0: IoU 0.64 with gt 0, 0.8 with gt 1
    res = ATSSAssigner(topk=3).assign(anchors, [5], gts, torch.tensor([0, 1]))
    assert res.gt_inds.tolist() == [2, 0, 0, 0, 0] and res.labels[0] == 1
    torch.testing.assert_close(res.max_overlaps[0], torch.tensor(0.8))


# ---------------------------------------------------------------- SimOTA
def _points(xs, stride=8.0):
    return torch.tensor([[x, 4.0, stride, stride] for x in xs])


def test_simota_candidates_cost_and_dynamic_k():
    priors = _points([4.0, 12.0, 100.0])
    preds = torch.tensor([box(0, 0, 8, 8), box(8, 0, 16, 8), box(96, 0, 104, 8)])
    scores = torch.full((3, 2), 0.5)
    gt = torch.tensor([box(0, 0, 8, 8)])
    res = SimOTAAssigner(center_radius=2.5).assign(priors, preds, scores, gt, torch.tensor([1]))
    # prior 2 is outside the gt and its centre region: never a candidate; k = int(IoU 1 + 0) = 1 -> prior 0
    assert res.gt_inds.tolist() == [1, 0, 0] and res.labels.tolist() == [1, -1, -1]
    torch.testing.assert_close(res.max_overlaps, torch.tensor([1.0, -100000.0, -100000.0]))
    far = SimOTAAssigner().assign(priors[2:], preds[2:], scores[2:], gt, torch.tensor([1]))
    assert far.gt_inds.tolist() == [0] and far.max_overlaps.tolist() == [0]
    empty = SimOTAAssigner().assign(priors, preds, scores, gt[:0], torch.zeros(0, dtype=torch.long))
    assert empty.gt_inds.tolist() == [0, 0, 0] and empty.labels.tolist() == [-1, -1, -1]


def test_simota_prior_claimed_twice_goes_to_cheaper_gt():
    priors = _points([4.0, 12.0])
    preds = torch.tensor([box(0, 0, 8, 8), box(8, 0, 16, 8)])
    scores = torch.tensor([[0.9, 0.1], [0.9, 0.1]])
    gts = torch.tensor([box(0, 0, 9, 8), box(0, 0, 8, 8)])  # both gts' best prior is prior 0
    res = SimOTAAssigner().assign(priors, preds, scores, gts, torch.tensor([0, 0]))
    assert res.gt_inds[0] == 2  # gt 1 overlaps prior 0's box exactly: lower IoU cost
    assert (res.gt_inds > 0).sum() >= 1


def test_yolox_empty_image_only_objectness():
    math = YOLOXMath({"num_classes": 2, "strides": [8]})
    outs = {"cls_scores": [torch.zeros(1, 2, 2, 2, requires_grad=True)],
            "bbox_preds": [torch.zeros(1, 4, 2, 2, requires_grad=True)],
            "objectnesses": [torch.zeros(1, 1, 2, 2, requires_grad=True)]}
    losses = math.loss_by_feat(outs, [torch.zeros(0, 4)], [torch.zeros(0, dtype=torch.long)], 16)
    assert float(losses["loss_cls"].detach()) == 0 and float(losses["loss_bbox"].detach()) == 0
    torch.testing.assert_close(losses["loss_obj"], 4 * torch.log(torch.tensor(2.0)))  # BCE(0.5, 0) x 4 priors / 1
    assert math.assign(outs, [torch.zeros(0, 4)], [torch.zeros(0, dtype=torch.long)])[0].gt_inds.tolist() == [0] * 4


# ---------------------------------------------------------------- FCOS targets
def _fcos_points(xs, y=4.0):
    return torch.tensor([[x, y] for x in xs])


def test_fcos_smallest_area_and_regress_range():
    fa = FCOSTargetAssigner(3, [8], regress_ranges=[(-1, 64)])
    pts = _fcos_points([10.0, 30.0, 200.0])
    gts = torch.tensor([box(0, 0, 40, 10), box(5, 0, 20, 10)])
    ranges = fa.expanded_ranges([pts])
    t = fa.targets_single(pts, ranges, [3], gts, torch.tensor([0, 2]))
    assert t.labels.tolist() == [2, 0, 3]  # point 0 in both: the smaller gt 1 wins; point 2 in none
    assert t.gt_inds.tolist() == [2, 1, 0]
    torch.testing.assert_close(t.bbox_targets[0], torch.tensor([5.0, 4.0, 10.0, 6.0]))
    narrow = FCOSTargetAssigner(3, [8], regress_ranges=[(-1, 20)])
    t2 = narrow.targets_single(pts, narrow.expanded_ranges([pts]), [3], gts, torch.tensor([0, 2]))
    assert t2.labels.tolist() == [2, 3, 3]  # point 1's max distance 30 > 20: out of range
    empty = fa.targets_single(pts, ranges, [3], gts[:0], torch.zeros(0, dtype=torch.long))
    assert empty.labels.tolist() == [3, 3, 3] and empty.bbox_targets.abs().sum() == 0


def test_fcos_center_sampling_radius():
    pts = _fcos_points([4.0, 12.0, 44.0], y=20.0)
    gt = torch.tensor([box(0, 0, 48, 40)])  # centre (24, 20); radius 1.5 * stride 8 = 12 -> x in (12, 36)
    cs = FCOSTargetAssigner(1, [8], regress_ranges=[(-1, 1e8)], center_sampling=True, center_sample_radius=1.5)
    t = cs.targets_single(pts, cs.expanded_ranges([pts]), [3], gt, torch.tensor([0]))
    assert t.labels.tolist() == [1, 1, 1]  # all outside the centre box (12 is on its edge, not strictly inside)
    inner = _fcos_points([13.0, 24.0, 24.0], y=20.0)
    inner[2, 1] = 33.0  # y outside (8, 32)
    t = cs.targets_single(inner, cs.expanded_ranges([inner]), [3], gt, torch.tensor([0]))
    assert t.labels.tolist() == [0, 0, 1]
    plain = FCOSTargetAssigner(1, [8], regress_ranges=[(-1, 1e8)])
    t = plain.targets_single(pts, plain.expanded_ranges([pts]), [3], gt, torch.tensor([0]))
    assert t.labels.tolist() == [0, 0, 0]


def test_fcos_norm_on_bbox_divides_targets_by_stride():
    cfg = {"num_classes": 2, "strides": [8, 16], "regress_ranges": [[-1, 1e8], [-1, 1e8]]}
    gt, lab = [torch.tensor([box(0, 0, 30, 30)])], [torch.tensor([1])]
    outs = {"cls_scores": [torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 2)],
            "bbox_preds": [torch.ones(1, 4, 4, 4), torch.ones(1, 4, 2, 2)],
            "centernesses": [torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2)]}
    plain = FCOSMath(cfg).loss_by_feat(outs, gt, lab)
    normed = FCOSMath({**cfg, "norm_on_bbox": True}).loss_by_feat(outs, gt, lab)
    # predictions of 1 px vs 1 stride: the IoU loss differs, the cls and centerness losses do not
    assert float(plain["loss_bbox"]) != float(normed["loss_bbox"])
    torch.testing.assert_close(plain["loss_cls"], normed["loss_cls"])
    torch.testing.assert_close(plain["loss_centerness"], normed["loss_centerness"])


def test_allowed_border_and_pos_weight():
    """Anchors reaching outside the image by more than allowed_border are left out (background, weight 0);
    positives get pos_weight as their classification weight when it is > 0."""
    from utils.dense.atss import ATSSMath

    cfg = {"num_classes": 2, "anchor_generator": {"strides": [8, 16], "octave_base_scale": 2},
           "train_cfg": {"allowed_border": 0, "pos_weight": 2.0}}
    math = ATSSMath(cfg)  # one 2 x stride anchor per cell, centred on the cell corner: the edge ones cross the border
    sizes = [(8, 8), (4, 4)]
    gt, lab = [torch.tensor([box(8, 8, 40, 40)])], [torch.tensor([1])]
    _, (t,) = math.targets(sizes, gt, lab, 64, "cpu")
    anchors = torch.cat(math.priors(sizes))
    inside = (anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] < 64) & (anchors[:, 3] < 64)
    assert torch.equal(t.inside, inside) and t.assign.num_priors == int(inside.sum()) > 0
    assert t.labels[~inside].eq(2).all() and t.label_weights[~inside].eq(0).all()
    pos = t.labels < 2
    assert pos.any() and t.label_weights[pos].eq(2.0).all() and t.label_weights[inside & ~pos].eq(1.0).all()
    everywhere = ATSSMath({**cfg, "train_cfg": {"allowed_border": -1}})
    _, (t_all,) = everywhere.targets(sizes, gt, lab, 64, "cpu")
    assert t_all.inside.all() and t_all.assign.num_priors == anchors.size(0)
