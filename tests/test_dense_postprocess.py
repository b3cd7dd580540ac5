"""The dense heads' own post-processing (the head contract's `postprocess`, as val.py and detect.py call it through
models/backend_export.detections): mmdetection's predict_by_feat on the reference case, nms_pre per level (not
in total), and an exported dense model post-processed the same way."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from models.backend_export import detections
from models.backends import Backend, load_backend
from models.head_protocol import DetectionHead
from tests.detections import assert_same_detections
from tests.mmdet_reference import FAMILIES, loaded_head, reference
from utils.dense.decoded_postprocess import postprocess_decoded
from utils.nms import head_nms_kwargs, non_max_suppression


def head_backend(head) -> Backend:
    """The Backend fields val.py / detect.py read, for a bare head."""
    return Backend(head, [str(i) for i in range(head.nc)], int(head.stride.max()), "pt", torch.device("cpu"),
                   has_objectness=head.has_objectness, test_cfg=head.test_cfg, postprocess=head.postprocess)


@pytest.mark.parametrize("val", [True, False], ids=["val", "detect"])
@pytest.mark.parametrize("name", FAMILIES)
def test_postprocess_equals_mmdet_predict(name, val):
    """val.py's and detect.py's path on the head's decoded rows gives mmdet's predict_by_feat detections
    (score_thr 0: the reference's predict_test_cfg), boxes, scores and labels in mmdet's order."""
    ref = reference(name)
    head = loaded_head(name, training=False)
    assert isinstance(head, DetectionHead)  # the contract's attributes, as the exporter finds heads
    head.cfg["test_cfg"] = dict(ref["predict_test_cfg"])
    with torch.no_grad():
        out = head(ref["feats"])  # (decoded, raw): detect.py hands the whole output, val.py the decoded rows
    backend = head_backend(head)
    flags = {"conf_thres": 0.001 if val else 0.0, "iou_thres": 0.45, "max_det": 10_000}  # the scripts' own
    kw = head_nms_kwargs(backend.test_cfg, flags, val=val)
    dets = detections(backend, out[0] if val else out, hw=(ref["img_size"], ref["img_size"]), **kw)
    p = ref["predict"]
    for i, det in enumerate(dets):
        assert len(det) == len(p["scores"][i]), f"image {i}"
        top = 50  # the low-score tail near the nms_pre cut is sensitive to float noise (reference README)
        want = torch.cat((p["bboxes"][i], p["scores"][i][:, None], p["labels"][i][:, None].float()), 1)
        assert_same_detections(det[:top], want[:top], box_px=1e-4, conf_atol=1e-6, what=f"{name} image {i}")
        torch.testing.assert_close(det[:, 4].sort().values, p["scores"][i].sort().values, atol=1e-6, rtol=0)


def _settings(nms_pre: int) -> dict:
    return {"nms_pre": nms_pre, "min_bbox_size": 0.0, "multi_label": True, "score_factor": False,
            "strides": [8.0, 16.0], "priors_per_cell": 1}


def test_nms_pre_is_per_level_not_total():
    """Two levels of a 16x16 input (4 + 1 priors), nms_pre 1: each level keeps its best pair, where one cut of
    2 over both levels (the total) would keep level 0's two best and lose level 1's box."""
    rows = torch.zeros(1, 5, 5)  # [cx, cy, w, h, score] one class
    rows[0, :, :4] = torch.tensor([[2, 2, 2, 2], [6, 2, 2, 2], [2, 6, 2, 2], [6, 6, 2, 2], [8, 8, 12, 12]]).float()
    rows[0, :, 4] = torch.tensor([0.9, 0.8, 0.1, 0.1, 0.5])
    kw = {"conf_thres": 0.05, "iou_thres": 0.5, "max_det": 100}
    per_level = postprocess_decoded(rows, (16, 16), _settings(1), **kw)[0]
    assert per_level[:, 4].tolist() == pytest.approx([0.9, 0.5])
    total = non_max_suppression(rows, multi_label=True, has_objectness=False, max_nms=2, **kw)[0]
    assert total[:, 4].tolist() == pytest.approx([0.9, 0.8])
    everything = postprocess_decoded(rows, (16, 16), _settings(-1), **kw)[0]
    assert everything[:, 4].tolist() == pytest.approx([0.9, 0.8, 0.5, 0.1, 0.1])


def test_rows_that_are_not_one_forward_are_refused():
    with pytest.raises(ValueError, match="no --augment"):
        postprocess_decoded(torch.zeros(1, 7, 5), (16, 16), _settings(1), conf_thres=0.1, iou_thres=0.5, max_det=9)


@pytest.mark.slow
def test_exported_dense_model_is_post_processed_as_the_model(tmp_path):
    """An FCOS model exported to TorchScript: its metadata's test_cfg gives detect/val the head's per-level
    post-processing (nms_pre 20 here, so the per-level cut matters), the same detections as the PyTorch model."""
    import export
    import val
    from models.checkpoint import save_checkpoint
    from models.yolo import Model
    from tests.test_val import make_small_dataset

    cfg = yaml.safe_load(Path("models/fcos-csp.yaml").read_text())
    cfg["head_cfg"]["test_cfg"] = {"nms_pre": 20, "min_bbox_size": 0, "score_thr": 0.05,
                                   "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 100}
    torch.manual_seed(0)
    model = Model(cfg, nc=80)
    for conv in model.detect.output_convs(model.model):  # scores spread over (0, 1) and over the priors (no ties)
        torch.nn.init.normal_(conv.weight, 0.0, 0.5)
        torch.nn.init.normal_(conv.bias, 0.0, 2.0)
    w = save_checkpoint(tmp_path / "fcos.pt", model, names=[str(i) for i in range(80)])
    ts = export.run(w, include=("torchscript",), imgsz=(128,))["torchscript"]
    pt_backend, ts_backend = load_backend(w), load_backend(ts)
    assert ts_backend.test_cfg == pt_backend.test_cfg and ts_backend.postprocess is not None
    im = torch.rand(1, 3, 128, 128)
    kw = head_nms_kwargs(pt_backend.test_cfg, {"conf_thres": 0.25, "iou_thres": 0.45, "max_det": 300})
    with torch.no_grad():
        want = detections(pt_backend, pt_backend(im)[0], hw=(128, 128), **kw)[0]
        got = detections(ts_backend, ts_backend(im), hw=(128, 128), **kw)[0]
    assert len(want) > 20  # more than one level's nms_pre: the levels each gave their own
    assert_same_detections(got, want, box_px=1e-3)
    data = make_small_dataset(tmp_path / "data")
    runs = dict(imgsz=128, batch_size=1, project=tmp_path / "runs", plots=False)
    assert val.run(data, ts, **runs)[0] == pytest.approx(val.run(data, w, **runs)[0], abs=1e-6)
