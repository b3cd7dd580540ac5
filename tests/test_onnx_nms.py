"""utils/export/onnx_nms.py: the in-graph NMS gives what utils/nms.py gives, on rows built to overlap a lot."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from utils.nms import non_max_suppression

onnx = pytest.importorskip("onnx", reason="the ONNX tests need onnx (requirements-dev.txt)")
ort = pytest.importorskip("onnxruntime", reason="the ONNX tests need onnxruntime (requirements-dev.txt)")

from utils.export.onnx_nms import add_nms  # noqa: E402


def _identity_model(width: int, batch: int | str = "batch"):
    """A graph that outputs its input (B, N, width): the decoded rows NMS is appended to."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, "n", width])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, "n", width])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["output0"])], "rows", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _rows(batch: int, n: int, nc: int, has_objectness: bool, seed: int) -> torch.Tensor:
    """Decoded rows in clusters (heavy overlap), random objectness and class scores. Coordinates are whole quarter
    pixels: then utils/nms.py's class offset (+cls * 7680) is exact in float32, and its IoUs equal the graph's
    (which has no offset with multi_label). With arbitrary floats the offset moves an IoU by ~3e-6: measured
    0.4500028 without it and 0.4499993 with it, one box kept by utils/nms.py at iou_thres 0.45 and not by the graph."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(batch, 6, 2, generator=g) * 300 + 50
    pick = torch.randint(0, 6, (batch, n), generator=g)
    xy = torch.gather(centers, 1, pick[..., None].expand(-1, -1, 2)) + torch.randn(batch, n, 2, generator=g) * 8
    wh = 30 + torch.rand(batch, n, 2, generator=g) * 60
    scores = torch.rand(batch, n, nc + has_objectness, generator=g)
    return torch.cat([(xy * 4).round() / 4, (wh * 4).round() / 4, scores], 2)


def _run(model, rows: torch.Tensor, conf: float, iou: float) -> list[torch.Tensor]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    boxes, scores, classes = session.run(None, {"images": rows.numpy(), "conf_thres": np.array([conf], np.float32),
                                                "iou_thres": np.array([iou], np.float32)})
    assert boxes.shape[:2] == scores.shape == classes.shape and boxes.shape[2] == 4
    out = []
    for b, s, c in zip(boxes, scores, classes):
        keep = c >= 0
        assert (s[~keep] == 0).all() and (b[~keep] == 0).all(), "padding rows are score 0, zero box"
        assert (np.diff(s[keep]) <= 0).all(), "rows sorted by score"
        out.append(torch.from_numpy(np.concatenate([b[keep], s[keep, None], c[keep, None].astype(np.float32)], 1)))
    return out


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("has_objectness", [True, False])
def test_in_graph_nms_equals_utils_nms(multi_label, has_objectness):
    nc = 4
    rows = _rows(3, 400, nc, has_objectness, seed=int(multi_label) + 2 * int(has_objectness))
    model = add_nms(_identity_model(4 + has_objectness + nc), 300, has_objectness, multi_label)
    total = 0
    for conf, iou in ((0.25, 0.45), (0.6, 0.3), (0.05, 0.7)):
        got = _run(model, rows, conf, iou)
        want = non_max_suppression(rows, conf, iou, multi_label=multi_label, max_det=300,
                                   has_objectness=has_objectness)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            torch.testing.assert_close(g, w, atol=1e-4, rtol=0)
            total += len(w)
    assert total > 100  # the comparison saw many kept boxes (and, in clusters, many suppressed ones)


def test_in_graph_nms_max_det_and_small_inputs():
    """max_det caps each image's rows (the best kept); fewer rows than max_det give K = rows x classes."""
    rows = _rows(2, 300, 3, True, seed=5)
    got = _run(add_nms(_identity_model(8), 7, True, True), rows, 0.01, 0.45)
    want = non_max_suppression(rows, 0.01, 0.45, multi_label=True, max_det=7)
    for g, w in zip(got, want):
        assert len(w) == 7
        torch.testing.assert_close(g, w, atol=1e-4, rtol=0)
    few = _rows(1, 2, 3, True, seed=6)
    session = ort.InferenceSession(add_nms(_identity_model(8), 300, True, True).SerializeToString())
    boxes = session.run(None, {"images": few.numpy(), "conf_thres": np.array([0.5], np.float32),
                               "iou_thres": np.array([0.5], np.float32)})[0]
    assert boxes.shape == (1, 6, 4)  # 2 rows x 3 classes < max_det


def test_add_nms_rejects_bad_max_det():
    with pytest.raises(ValueError, match="max_det"):
        add_nms(_identity_model(8), 0)
