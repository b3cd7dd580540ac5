"""Our heads' outputs through utils/dense's mmdetection math against mmdetection 3.3 (../shared/reference/mmdet/):
every loss item (per level where mmdet has levels), the gradient of loss_sum for every head parameter, the
assignment, and the post-processed predictions; plus the training-loss wrapper on YOLO targets."""
from __future__ import annotations

import pytest
import torch

from tests.mmdet_reference import FAMILIES, loaded_head, reference
from utils.dense.families import build_family
from utils.loss_dense import DenseFamilyLoss, loss_total

CASES = [(name, case) for name in FAMILIES for case in ("a", "b")] + [("yolox", "a_l1")]


def _math(head, case: str):
    math = build_family(head.cfg, "head_cfg")
    math.use_l1 = case == "a_l1"  # YOLOX's L1 term (mmdet's YOLOXModeSwitchHook turns it on late in training)
    return math


def _loss(name: str, case: str, dtype=torch.float32):
    ref, head = reference(name), loaded_head(name).to(dtype)
    gt = ref["loss"][case]
    outs = head.split(head([f.to(dtype) for f in ref["feats"]]))
    losses = _math(head, case).loss_by_feat(outs, [b.to(dtype) for b in gt["gt_bboxes"]], gt["gt_labels"], 256)
    loss_total(losses).backward()
    return head, losses


def _close(ours, theirs) -> None:
    ours, theirs = (torch.stack(list(x)) if isinstance(x, (list, tuple)) else x for x in (ours, theirs))
    torch.testing.assert_close(ours.detach().float(), theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,case", CASES)
def test_loss_items_and_gradients_match_mmdet(name, case):
    ref = reference(name)["loss"][case]
    head, losses = _loss(name, case)
    assert sorted(losses) == sorted(ref["losses"])
    for key, value in ref["losses"].items():
        if isinstance(value, (list, tuple)):
            assert len(losses[key]) == len(value), key  # per level, stride 8 first
        _close(losses[key], value)
    torch.testing.assert_close(loss_total(losses).detach(), ref["loss_sum"], rtol=1e-6, atol=1e-6)
    params = dict(head.named_parameters())
    assert sorted(params) == sorted(ref["grads"])
    off = []
    for key, g in ref["grads"].items():
        if (params[key].grad - g).abs().max() > 1e-5 * g.abs().max() + 1e-6:
            off.append(key)
    if off:  # only where the reference's own fp32 rounding is the larger one: the same math in fp64 is the judge
        head64, _ = _loss(name, case, torch.float64)
        exact = dict(head64.named_parameters())
        for key in off:
            g64 = exact[key].grad
            ours, theirs = ((g.double() - g64).abs().max() for g in (params[key].grad, ref["grads"][key]))
            assert ours <= 5e-6 * g64.abs().max() and 5 * ours <= theirs, key
    assert len(off) <= 1, off  # measured: fcos case b, conv_cls.bias (reference 2.2e-5 from the fp64 value)


@pytest.mark.parametrize("name", FAMILIES)
def test_assignment_matches_mmdet(name):
    ref = reference(name)
    head = loaded_head(name)
    gt = ref["loss"]["a"]
    with torch.no_grad():
        outs = head.split(head(ref["feats"]))
    results = _math(head, "a").assign(outs, gt["gt_bboxes"], gt["gt_labels"], 256)
    for res, want in zip(results, ref["assign"]):
        assert torch.equal(res.gt_inds, want["gt_inds"])
        if name != "fcos":  # FCOS's reference labels use num_classes as background, it states no overlaps
            assert torch.equal(res.labels, want["labels"])
            torch.testing.assert_close(res.max_overlaps, want["max_overlaps"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", FAMILIES)
def test_predictions_match_mmdet(name):
    """predict_by_feat on our eval-mode outputs gives mmdet's detections (top 50 by score; the low tail near the
    nms_pre cut is sensitive to rounding, see the reference README)."""
    ref = reference(name)
    head = loaded_head(name, training=False)
    with torch.no_grad():
        outs = head.split(head(ref["feats"])[1])
    dets = build_family(head.cfg).predict_by_feat(outs, 256, ref["predict_test_cfg"])
    for i, det in enumerate(dets):
        boxes, scores, labels = (det[k] if isinstance(det, dict) else det[j]
                                 for j, k in enumerate(("bboxes", "scores", "labels")))
        want = {k: ref["predict"][k][i] for k in ("bboxes", "scores", "labels")}
        assert len(scores) == len(want["scores"])
        k = 50
        torch.testing.assert_close(scores[:k], want["scores"][:k], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(boxes[:k], want["bboxes"][:k], rtol=1e-5, atol=1e-4)
        assert torch.equal(labels[:k], want["labels"][:k])


def _yolo_targets(gt_bboxes, gt_labels, size: int = 256) -> torch.Tensor:
    rows = []
    for i, (b, lab) in enumerate(zip(gt_bboxes, gt_labels)):
        cxcywh = torch.cat(((b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]), 1) / size
        rows.append(torch.cat((torch.full((len(b), 1), float(i)), lab[:, None].float(), cxcywh), 1))
    return torch.cat(rows)


@pytest.mark.parametrize("name", FAMILIES)
def test_training_loss_wrapper_gives_mmdet_total(name):
    """YOLO targets (normalised cxcywh) -> the same total as mmdet's loss_sum, x batch size; items named."""
    ref = reference(name)
    head = loaded_head(name)
    gt = ref["loss"]["a"]
    loss = DenseFamilyLoss(head)
    total, items = loss(head(ref["feats"]), _yolo_targets(gt["gt_bboxes"], gt["gt_labels"]))
    assert total.shape == (1,) and items.shape == (3,) and not items.requires_grad
    torch.testing.assert_close(total.detach() / 2, gt["loss_sum"].reshape(1), rtol=1e-5, atol=1e-6)
    assert len(loss.item_names) == 3 and loss.item_names[0] == "box"
    flat = {k: float(sum(v) if isinstance(v, (list, tuple)) else v) for k, v in ref["loss"]["a"]["losses"].items()}
    assert float(items[loss.item_names.index("cls")]) == pytest.approx(flat["loss_cls"], rel=1e-5)
    assert float(items[0]) == pytest.approx(flat["loss_bbox"], rel=1e-5)


@pytest.mark.parametrize("name", FAMILIES)
def test_positives_are_the_assigners_choice(name):
    ref = reference(name)
    head = loaded_head(name)
    gt = ref["loss"]["a"]
    pos = DenseFamilyLoss(head).positives(head(ref["feats"]), _yolo_targets(gt["gt_bboxes"], gt["gt_labels"]))
    for p, want in zip(pos, ref["assign"]):
        wanted = want["gt_inds"][want["gt_inds"] > 0] - 1
        assert torch.equal(p["gt_index"], wanted)
        assert p["centers"].shape == (len(wanted), 2) and p["level"].shape == (len(wanted),)
        assert p["level"].min() >= 0 and p["level"].max() < head.nl
