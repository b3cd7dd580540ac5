"""NMS without objectness (anchor-free heads) against ultralytics 8.4's non_max_suppression (nms_cases_v8.pt)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.shared_data import shared_path
from utils.nms import non_max_suppression

REF = "reference/ultralytics"


@pytest.fixture(scope="module")
def ref() -> tuple[dict, dict]:
    return (torch.load(shared_path(REF, "nms_cases_v8.pt"), weights_only=True),
            torch.load(shared_path(REF, "yolov8n_forward.pt"), weights_only=True))


def _sorted_rows(d: torch.Tensor) -> torch.Tensor:
    """Rows ordered by (score, class, x1, y1) so that equal sets compare equal whatever the tie order."""
    if not len(d):
        return d
    order = torch.from_numpy(np.lexsort([d[:, 1].numpy(), d[:, 0].numpy(), d[:, 5].numpy(), -d[:, 4].numpy()]))
    return d[order]


@pytest.mark.parametrize("src", ["seeded", "calib"])
@pytest.mark.parametrize("flagset", ["val", "predict", "predict_iou045", "conf085_iou045"])
def test_nms_matches_ultralytics(ref, src, flagset, one_thread):
    cases, fwd = ref
    flags = {k: v for k, v in cases["flagsets"][flagset].items() if k not in ("nc",)}
    pred = fwd["eval_out" if src == "seeded" else "calib_eval_out"].transpose(1, 2)  # ours is (B, N, 4 + nc)
    out = non_max_suppression(pred.clone(), has_objectness=False, **flags)
    case = cases["cases"][f"{src}_{flagset}"]
    assert [len(d) for d in out] == [len(d) for d in case["out"]]
    for ours, theirs in zip(out, case["out"]):
        torch.testing.assert_close(_sorted_rows(ours), _sorted_rows(theirs), atol=1e-5, rtol=0)


def test_objectness_flag_changes_the_row_layout():
    pred = torch.tensor([[[50.0, 50.0, 20.0, 20.0, 0.9, 0.1]]])
    # without objectness the 5th column is class 0's score: kept as it is, not multiplied into class scores
    assert non_max_suppression(pred, 0.25, has_objectness=False)[0][0, 4:].tolist() == pytest.approx([0.9, 0.0])
    assert non_max_suppression(pred, 0.25)[0][:, 4:].tolist() == []  # as YOLOv5 rows: obj 0.9 x cls 0.1 < 0.25
    with pytest.raises(ValueError, match=r"\(batch, n, 5 \+ nc\)"):
        non_max_suppression(pred[..., :5], 0.25)
