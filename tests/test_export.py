"""export.py: TorchScript and ONNX files that run like the PyTorch model, and that detect/val accept."""
from __future__ import annotations

import shutil

import pytest
import torch

import detect
import export
import val
from models.backends import load_backend
from tests.shared_data import shared_path
from tests.test_val import make_small_dataset


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """yolov5n exported once at 320 (static) to both formats, plus a dynamic ONNX copy."""
    folder = tmp_path_factory.mktemp("export")
    w = folder / "yolov5n.pt"
    shutil.copy(shared_path("weights", "yolov5n.pt"), w)
    files = export.run(w, include=("torchscript", "onnx"), imgsz=(320,))
    dyn = folder / "dyn" / "yolov5n.pt"
    dyn.parent.mkdir()
    shutil.copy(w, dyn)
    files["dynamic"] = export.run(dyn, include=("onnx",), imgsz=(320, 320), dynamic=True)["onnx"]
    return w, files


@pytest.mark.slow
def test_files_and_metadata(exported):
    w, files = exported
    assert files["torchscript"] == w.with_suffix(".torchscript") and files["onnx"].is_file()
    for fmt in ("torchscript", "onnx"):
        b = load_backend(files[fmt])
        assert b.names[0] == "person" and len(b.names) == 80 and b.stride == 32
        assert not b.dynamic and b.imgsz == (320, 320) and b.batch_size == 1
    assert load_backend(files["dynamic"]).dynamic


@pytest.mark.slow
def test_exports_match_pytorch_on_real_image(exported):
    """The reference 320 input through each export equals the PyTorch model (fp32 tolerances of the README)."""
    w, files = exported
    x = torch.load(shared_path("reference", "yolov5", "yolov5n_forward.pt"), weights_only=True)["input_320"]
    with torch.inference_mode():
        expected = load_backend(w)(x)[0]
    for key in ("torchscript", "onnx", "dynamic"):
        got = load_backend(files[key])(x)
        torch.testing.assert_close(got[..., :4], expected[..., :4], atol=2e-3, rtol=1e-4)
        torch.testing.assert_close(got[..., 4:], expected[..., 4:], atol=1e-4, rtol=0)


@pytest.mark.slow
def test_detect_and_val_accept_exports(exported, tmp_path):
    w, files = exported
    image = shared_path("datasets", "coco128", "images", "train2017", "000000000009.jpg")
    runs = str(tmp_path / "runs")
    _, ref = detect.run(w, image, imgsz=[320], auto=False, nosave=True, project=runs)
    for key in ("torchscript", "onnx"):
        _, res = detect.run(files[key], image, imgsz=[320], nosave=True, project=runs)
        assert res[0][2].shape == ref[0][2].shape
        torch.testing.assert_close(res[0][2], ref[0][2], atol=1.0, rtol=0)
    data = make_small_dataset(tmp_path)
    pt = val.run(data, w, imgsz=320, batch_size=1, task="speed", project=runs, plots=False)[0]
    onnx = val.run(data, files["onnx"], imgsz=320, batch_size=1, task="speed", project=runs, plots=False)[0]
    assert onnx[:4] == pytest.approx(pt[:4], abs=1e-3)


def test_export_errors(tmp_path):
    w = tmp_path / "yolov5n.pt"
    shutil.copy(shared_path("weights", "yolov5n.pt"), w)
    with pytest.raises(ValueError, match="stride"):
        export.run(w, include=("onnx",), imgsz=(300,))
    with pytest.raises(ValueError, match="unknown format"):
        export.run(w, include=("tflite",))
