"""TaskAlignedAssigner and the YOLOv8 loss against ultralytics 8.4 (../shared/reference/ultralytics/v8_loss_cases.pt)."""
from __future__ import annotations

import pytest
import torch

from models.yolo import Model
from tests.shared_data import shared_path
from utils.hyp import load_hyp
from utils.loss_v8 import V8DetectionLoss
from utils.tal import TaskAlignedAssigner

REF = "reference/ultralytics"


@pytest.fixture(scope="module")
def cases() -> dict:
    return torch.load(shared_path(REF, "v8_loss_cases.pt"), weights_only=True)


@pytest.fixture(scope="module")
def seeded() -> dict:
    sd = torch.load(shared_path(REF, "yolov8n_forward.pt"), weights_only=True)["state_dict"]
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


def targets_of(case: dict) -> torch.Tensor:
    return torch.cat((case["batch_idx"].view(-1, 1), case["cls"].view(-1, 1), case["bboxes"]), 1)


def test_hyp_file_has_the_original_gains(cases):
    hyp = load_hyp("data/hyps/hyp.v8.yaml")
    assert {k: hyp[k] for k in ("box", "cls", "dfl")} == cases["hyp"]


@pytest.mark.parametrize("name", ["a", "b", "c"])
def test_assignment_loss_and_gradients_match(cases, seeded, name, one_thread):
    case = cases["cases"][name]
    a = cases["assigner"]
    model = Model("yolov8n.yaml")
    model.load_state_dict(seeded)
    model.train()
    crit = V8DetectionLoss(model.detect, cases["hyp"], topk=a["topk"])
    assert (crit.assigner.topk, crit.assigner.alpha, crit.assigner.beta, crit.assigner.stride_val) == (
        a["topk"], a["alpha"], a["beta"], a["stride_val"])
    preds = model(case["img_uint8"].float() / 255)
    res, parts = crit.assign(preds, targets_of(case))
    assert torch.equal(parts["gt_bboxes"], case["gt_padded_xyxy_px"])
    assert torch.equal(parts["mask_gt"].bool(), case["mask_gt"].bool())
    assert int(res.fg_mask.sum()) == case["fg_count"]
    assert float(res.target_scores.sum()) == pytest.approx(float(case["target_scores_sum"]), rel=1e-5)
    if "fg_mask" in case:
        assert torch.equal(res.fg_mask, case["fg_mask"])
        assert torch.equal(res.target_gt_idx, case["target_gt_idx"])
        assert torch.equal(res.target_bboxes, case["target_bboxes"])
        assert torch.equal(res.fg_mask.nonzero(), case["target_scores_fg_index"])
        torch.testing.assert_close(res.target_scores[res.fg_mask].float(), case["target_scores_fg"], atol=1e-5, rtol=0)
        assert res.target_scores[~res.fg_mask].abs().sum() == 0
    if case.get("preds_level_outputs") is not None:  # the original's own predictions: bit-level agreement
        _, items = crit(case["preds_level_outputs"], targets_of(case))
        torch.testing.assert_close(items, case["loss_items"], rtol=1e-5, atol=0)
    total, items = crit(preds, targets_of(case))
    torch.testing.assert_close(items, case["loss_items"], rtol=1e-4, atol=0)
    torch.testing.assert_close(items * preds[0].shape[0], case["loss_x_bs"], rtol=1e-4, atol=0)
    assert total.item() == pytest.approx(float(case["total"]), rel=1e-5)
    model.zero_grad()
    total.sum().backward()
    params = dict(model.named_parameters())
    for k, g in case["grads"].items():  # 1e-5 of each tensor's scale (its max |g|); why not tighter: see below
        torch.testing.assert_close(params[k].grad, g, rtol=1e-3, atol=1e-5 * g.abs().max().item() + 1e-9, msg=k)


def _scaled_gap(a: dict, b: dict) -> float:
    """Largest |a - b| of the gradients, each over its tensor's max |b| (tensors that are all zero skipped)."""
    return max(float((a[k].double() - g.double()).abs().max() / g.double().abs().max()) for k, g in b.items()
               if g.abs().max() > 1e-12)


def test_gradient_gap_to_the_reference_is_float32_rounding(cases, seeded, one_thread):
    """The gradients differ from the reference by ~1e-5 of their scale (first conv: 2.9e-5 of 2.86) because both are
    float32 sums through ~60 layers, not because of a bug: computed in float64 (the exact gradient to ~1e-12),
    ours and the reference are each ~2e-5 away from it, ours in float32 as well.

    Checked once against the original itself (ultralytics 8.4.190 in its own environment, same weights and
    batches, float64 throughout, its float32 target padding widened): ours in float64 equals its float64 gradients
    to 1.1e-6 / 1.2e-6 / 5.2e-7 of the scale (cases a / b / c) and its loss items to 1e-7, twenty times below the
    float32 gap; and the original's own float32 gradients rerun with 1 thread differ from its stored (2-thread)
    ones by 1.1e-5 / 1.7e-5 / 1.6e-5, as much as ours do (1.0e-5 / 1.5e-5 / 1.4e-5). A 1e-5 match to a float32
    reference is therefore out of reach for the original too; the order of reductions (thread split) is the
    whole gap."""
    case = cases["cases"]["a"]
    grads = {}
    for dtype in (torch.float32, torch.float64):
        model = Model("yolov8n.yaml")
        model.load_state_dict(seeded)  # fp16-rounded values: exactly the same weights in float64
        model = model.to(dtype).train()
        total, _ = V8DetectionLoss(model.detect, cases["hyp"])(model(case["img_uint8"].to(dtype) / 255),
                                                               targets_of(case))
        total.sum().backward()
        params = dict(model.named_parameters())
        grads[dtype] = {k: params[k].grad for k in case["grads"]}
    exact = grads[torch.float64]
    ref_err, our_err = _scaled_gap(case["grads"], exact), _scaled_gap(grads[torch.float32], exact)
    assert 5e-6 < ref_err < 3e-5 and 5e-6 < our_err < 3e-5  # both float32 results: ~2e-5 from the exact one
    assert _scaled_gap(grads[torch.float32], case["grads"]) < 1.5e-5  # and within that of each other


def test_no_ground_truth_gives_background_only(seeded):
    model = Model("yolov8n.yaml")
    model.load_state_dict(seeded)
    preds = model.train()(torch.rand(2, 3, 64, 64))
    crit = V8DetectionLoss(model.detect, {"box": 7.5, "cls": 0.5, "dfl": 1.5})
    total, items = crit(preds, torch.zeros(0, 6))
    assert items[0] == 0 and items[2] == 0 and items[1] > 0
    total.backward()
    res = TaskAlignedAssigner()(torch.rand(1, 5, 80), torch.rand(1, 5, 4), torch.rand(5, 2), torch.zeros(1, 0, 1),
                                torch.zeros(1, 0, 4), torch.zeros(1, 0, 1))
    assert not res.fg_mask.any() and (res.target_labels == 80).all()


def test_missing_gain_is_named():
    with pytest.raises(KeyError, match="dfl"):
        V8DetectionLoss(Model("yolov8n.yaml").detect, {"box": 7.5, "cls": 0.5})
