"""The mmdetection-family heads against mmdetection 3.3's own outputs (../shared/reference/mmdet/): the state_dict
loads key for key, the forward outputs (train and, for YOLOX's BN, eval), the priors, and the contract's decoded
boxes and scores reproduce every box mmdet predicted."""
from __future__ import annotations

import pytest
import torch

from models.dense_heads.decode import grid_points
from tests.mmdet_reference import FAMILIES, loaded_head, reference
from utils.boxes import xywh2xyxy


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


@pytest.mark.parametrize("name", FAMILIES)
def test_forward_matches_mmdet_in_training(name):
    ref = reference(name)
    outs = loaded_head(name).split(loaded_head(name)(ref["feats"]))
    assert list(outs) == ref["forward_output_names"]
    for key, levels in ref["outs"].items():
        assert [tuple(t.shape) for t in outs[key]] == [tuple(t.shape) for t in levels]
        for ours, theirs in zip(outs[key], levels):
            assert _rel(ours, theirs) < 1e-5, (name, key)


def test_yolox_eval_forward_uses_running_stats():
    ref = reference("yolox")
    head = loaded_head("yolox", training=False)
    _, raw = head(ref["feats"])
    outs = head.split(raw)
    for key, levels in ref["outs_eval"].items():
        for ours, theirs in zip(outs[key], levels):
            assert _rel(ours, theirs) < 1e-5, key
    assert _rel(outs["cls_scores"][0], ref["outs"]["cls_scores"][0]) > 1e-3  # train mode (batch stats) differs


@pytest.mark.parametrize("name", FAMILIES)
def test_priors_match_mmdet(name):
    ref = reference(name)
    head = loaded_head(name, training=False)
    raw = head(ref["feats"])[1]
    if hasattr(head, "anchors"):
        ours = head.anchors(raw)
    else:
        offset = 0.5 if name == "fcos" else 0.0
        ours = [grid_points(r.shape[2], r.shape[3], s, offset) for r, s in zip(raw, head.stride.tolist())]
    for a, b in zip(ours, ref["priors"]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", FAMILIES)
def test_decoded_rows_hold_every_mmdet_prediction(name):
    """Each box mmdet's predict_by_feat kept (score_thr 0) is one of the contract's decoded rows, same score."""
    ref = reference(name)
    head = loaded_head(name, training=False)
    decoded, _ = head(ref["feats"])
    assert decoded.shape[2] == 4 + head.has_objectness + head.nc
    for i in range(2):
        boxes = xywh2xyxy(decoded[i, :, :4])
        scores = decoded[i, :, 5:] * decoded[i, :, 4:5] if head.has_objectness else decoded[i, :, 4:]
        rb, rs, rl = (ref["predict"][k][i] for k in ("bboxes", "scores", "labels"))
        dist = torch.cdist(rb, boxes, compute_mode="donot_use_mm_for_euclid_dist")
        score_gap = (scores.T[rl] - rs[:, None]).abs()
        j = (dist + 1e3 * (dist > 1e-3) + score_gap).argmin(1)  # the same box with the same score (ties: equal boxes)
        assert dist.gather(1, j[:, None]).max() < 1e-4 * 256
        assert torch.allclose(scores[j, rl], rs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", FAMILIES)
def test_export_flag_returns_decoded_only(name):
    ref = reference(name)
    head = loaded_head(name, training=False)
    head.export = True
    out = head(ref["feats"])
    assert isinstance(out, tuple) and len(out) == 1 and out[0].shape[0] == 2
