"""An anchor-free model through export (TorchScript, ONNX), detect and val: the head contract travels in the metadata."""
from __future__ import annotations

import pytest
import torch

import detect
import export
import val
from models.backends import load_backend
from models.checkpoint import atomic_save, make_checkpoint
from models.yolo import Model
from tests.shared_data import shared_path
from tests.test_val import make_small_dataset

REF = "reference/ultralytics"


@pytest.fixture(scope="module")
def calibrated_weights(tmp_path_factory):
    """yolov8n with the reference's BN-calibrated weights (class scores 0.05..0.94), saved as our checkpoint."""
    ref = torch.load(shared_path(REF, "yolov8n_forward.pt"), weights_only=True)
    model = Model("yolov8n.yaml")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ref["state_dict"].items()})
    model.load_state_dict(ref["calib_changed"], strict=False)
    path = tmp_path_factory.mktemp("v8export") / "yolov8n.pt"
    atomic_save(make_checkpoint(model.eval()), path)
    return path, ref


@pytest.mark.slow
def test_export_detect_val_without_objectness(calibrated_weights, tmp_path, one_thread):
    pytest.importorskip("onnxruntime")
    w, ref = calibrated_weights
    # the default check: boxes within 1e-3 + 1e-4 x the largest box value, scores within 1e-3 (export.output_gap)
    files = export.run(w, include=("torchscript", "onnx"), imgsz=(256,))
    x = torch.nn.functional.interpolate(ref["input"][:1], size=(256, 256), mode="bilinear", align_corners=False)
    pt = load_backend(w)
    assert not pt.has_objectness
    with torch.inference_mode():
        expected = pt(x)[0]
    assert expected.shape == (1, 1344, 84)
    for fmt in ("torchscript", "onnx"):
        b = load_backend(files[fmt])
        assert not b.has_objectness  # from the export's metadata
        got = b(x)
        torch.testing.assert_close(got[..., :4], expected[..., :4], atol=2e-3, rtol=1e-4)
        torch.testing.assert_close(got[..., 4:], expected[..., 4:], atol=1e-4, rtol=0)
    image = shared_path("datasets", "coco128", "images", "train2017", "000000000009.jpg")
    runs = str(tmp_path / "runs")
    _, res_pt = detect.run(w, image, imgsz=[256], auto=False, nosave=True, project=runs, conf_thres=0.5)
    _, res_ts = detect.run(files["torchscript"], image, imgsz=[256], nosave=True, project=runs, conf_thres=0.5)
    assert len(res_pt[0][2]) > 0 and res_pt[0][2].shape == res_ts[0][2].shape
    data = make_small_dataset(tmp_path)
    metrics = val.run(data, w, imgsz=256, batch_size=2, task="speed", project=runs, plots=False)[0]
    assert len(metrics) == 7 and all(0 <= m <= 1 for m in metrics[:4])
