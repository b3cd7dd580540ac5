"""export.py: TorchScript and ONNX files that run like the PyTorch model, and that detect/val accept."""
from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

import detect
import export
import val
from models.backend_export import with_thresholds
from models.backends import export_metadata, load_backend
from tests.detections import assert_same_detections
from tests.no_gc import gc_disabled
from tests.shared_data import shared_path
from tests.test_val import make_small_dataset

ROOT = Path(__file__).resolve().parents[1]


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
def test_an_export_backend_is_freed_when_dropped(exported):
    """No reference cycle: dropping the backend frees the ONNX Runtime session at once, with no garbage collection
    (one left to a collection ran its destructor in a forked DataLoader worker, which hung)."""
    _, files = exported
    with gc_disabled():
        backend = with_thresholds(load_backend(files["onnx"]), 0.25, 0.45, multi_label=False)
        backend(torch.zeros(1, 3, 320, 320))
        dropped = weakref.ref(backend), weakref.ref(backend.session)
        del backend
        assert [r() for r in dropped] == [None, None]


@pytest.mark.slow
def test_detect_and_val_accept_exports(exported, tmp_path):
    w, files = exported
    image = shared_path("datasets", "coco128", "images", "train2017", "000000000009.jpg")
    runs = str(tmp_path / "runs")
    _, ref = detect.run(w, image, imgsz=[320], auto=False, nosave=True, project=runs)
    threads = torch.get_num_threads()
    for key in ("torchscript", "onnx"):
        _, res = detect.run(files[key], image, imgsz=[320], nosave=True, project=runs)
        assert torch.get_num_threads() == threads  # detect.py gives torch one thread only around an ONNX run
        # boxes are rounded to whole pixels (as YOLOv5 writes them): a float difference may flip one at .5
        assert_same_detections(res[0][2], ref[0][2], box_px=1.0, what=key)
    data = make_small_dataset(tmp_path)
    pt = val.run(data, w, imgsz=320, batch_size=1, task="speed", project=runs, plots=False)[0]
    onnx = val.run(data, files["onnx"], imgsz=320, batch_size=1, task="speed", project=runs, plots=False)[0]
    assert onnx[:4] == pytest.approx(pt[:4], abs=1e-3)


@pytest.mark.slow
def test_detect_gives_torch_one_thread_beside_onnx_runtime(exported, tmp_path, monkeypatch):
    """ONNX Runtime computes on its own CPU threads: torch's pre/post-processing in detect.py runs on one thread
    meanwhile (its spinning OpenMP threads took the runtime's cores); a PyTorch model keeps torch's threads."""
    w, files = exported
    seen = {}
    load = detect.load_detector

    def recording(opt):
        detector = load(opt)
        name = "run" if hasattr(detector, "run") else "forward"  # an ExportSession's or a Backend's
        call = getattr(detector, name)
        setattr(detector, name, lambda *a: (seen.setdefault(detector.kind, torch.get_num_threads()), call(*a))[1])
        return detector

    monkeypatch.setattr(detect, "load_detector", recording)
    image = shared_path("datasets", "coco128", "images", "train2017", "000000000009.jpg")
    threads = torch.get_num_threads()
    for weights in (w, files["onnx"]):
        detect.run(weights, image, imgsz=[320], nosave=True, project=str(tmp_path))
    assert seen == {"pt": threads, "onnx": 1}
    assert torch.get_num_threads() == threads


@pytest.mark.slow
def test_detect_runs_a_cpu_export_without_torch(exported, tmp_path):
    """detect.py on an ONNX file computing on the CPU runs where torch cannot be imported (as if not installed:
    about a second of each run saved), and still writes its annotated image and labels."""
    _, files = exported
    image = shared_path("datasets", "coco128", "images", "train2017", "000000000009.jpg")
    argv = ["detect.py", "--weights", str(files["dynamic"]), "--source", str(image), "--img", "320", "--save-txt",
            "--project", str(tmp_path)]
    code = ("import runpy, sys; sys.modules['torch'] = None; "  # `import torch` now raises ImportError
            f"sys.argv = {argv!r}; runpy.run_path('detect.py', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "exp" / "000000000009.jpg").is_file()
    assert (tmp_path / "exp" / "labels" / "000000000009.txt").read_text().strip()


@pytest.mark.slow
def test_detect_numpy_path_equals_torch_path(exported, tmp_path, monkeypatch):
    """The ExportSession path (NumPy NMS) gives exactly the rows of the torch Backend path over the same ONNX
    file, with the class filter, agnostic NMS and max_det too."""
    _, files = exported
    images = shared_path("datasets", "coco128", "images", "train2017")
    source = tmp_path / "list.txt"
    source.write_text("\n".join(str(images / f"{s}.jpg") for s in ("000000000009", "000000000025", "000000000030",
                                                                    "000000000034", "000000000036")) + "\n")
    settings = ({"conf_thres": 0.01}, {"classes": [0, 45], "agnostic_nms": True, "max_det": 3})
    numpy_runs = [detect.run(files["dynamic"], source, imgsz=[320], nosave=True, project=str(tmp_path), **kw)[1]
                  for kw in settings]
    monkeypatch.setattr(detect, "runs_without_torch", lambda opt: False)
    for kw, ours in zip(settings, numpy_runs):
        theirs = detect.run(files["dynamic"], source, imgsz=[320], nosave=True, project=str(tmp_path), **kw)[1]
        assert [r[0] for r in ours] == [r[0] for r in theirs] and sum(len(r[2]) for r in ours) > 0
        for (_, _, a), (_, _, b) in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)


def test_detect_names_a_corrupt_cpu_export(exported, tmp_path):
    """The NumPy path opens the file itself: a truncated ONNX file is one error naming it, as through load_backend."""
    from utils.cli import UserError

    _, files = exported
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(files["dynamic"].read_bytes()[:50_000])
    image = shared_path("datasets", "coco128", "images", "train2017", "000000000009.jpg")
    with pytest.raises(UserError, match="cut.onnx: not a loadable ONNX model"):
        detect.run(cut, image, device="cpu", nosave=True, project=str(tmp_path))


def test_which_detect_runs_go_without_torch(tmp_path):
    """CPU exports go without torch; PyTorch weights, accelerators and flags that need a torch model do not."""
    from utils.detection.options import DetectOptions

    ir = tmp_path / "m_openvino_model"
    ir.mkdir()
    cases = [("m.onnx", "cpu", {}, True), (str(ir), "", {}, True), (str(ir), "cpu", {"bf16": True}, True),
             ("m.pt", "cpu", {}, False), ("m.onnx", "0", {}, False), ("m.onnx", "cpu", {"augment": True}, False),
             ("m.onnx", "cpu", {"bf16": True}, False), ("m.torchscript", "cpu", {}, False),
             ("m.onnx", "cpu", {"compile": True}, False)]
    for weights, device, flags, want in cases:
        assert detect.runs_without_torch(DetectOptions(weights=weights, device=device, **flags)) is want, \
            (weights, device, flags)


def test_export_errors(tmp_path):
    w = tmp_path / "yolov5n.pt"
    shutil.copy(shared_path("weights", "yolov5n.pt"), w)
    with pytest.raises(ValueError, match="stride"):
        export.run(w, include=("onnx",), imgsz=(300,))
    with pytest.raises(ValueError, match="unknown format"):
        export.run(w, include=("tflite",))


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """yolov5n.pt in a folder of its own, made read-only (for root, writes still succeed: tests compare listings)."""
    folder = tmp_path_factory.mktemp("ro")
    w = folder / "yolov5n.pt"
    shutil.copy(shared_path("weights", "yolov5n.pt"), w)
    folder.chmod(0o555)
    yield w
    folder.chmod(0o755)


@pytest.mark.slow
@pytest.mark.parametrize("order", list(itertools.permutations(("torchscript", "onnx"))))  # openvino: test_deploy.py
def test_every_format_order_exports_and_verifies(small_weights, tmp_path, order):
    """Each format, whatever ran before it, is traced from the eval model (export.run verifies against PyTorch)."""
    before = sorted(p.name for p in small_weights.parent.iterdir())
    files = export.run(small_weights, include=order, imgsz=(64,), project=tmp_path, name="exp")
    assert list(files) == list(order) and all(p.parent == tmp_path / "exp" for p in files.values())
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    outs = [load_backend(files[fmt])(x) for fmt in order]
    assert all(o.shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 85) for o in outs)
    torch.testing.assert_close(outs[0], outs[1], atol=1e-3, rtol=1e-4)
    assert sorted(p.name for p in small_weights.parent.iterdir()) == before
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == sorted(f"yolov5n.{fmt}" for fmt in order)


@pytest.mark.slow
def test_export_leaves_the_model_as_it_found_it(small_weights, tmp_path):
    """A model in training mode (one block in eval) with Detect.export off: each export sees the eval model and
    leaves every module's flag as it was, in any sequence of formats."""
    from models import load_model

    model = load_model(small_weights)  # unfused: BatchNorm in training mode would change the output
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = model(x)[0]
    model.train()
    model.model[2].eval()
    flags = [m.training for m in model.modules()]
    meta = export_metadata(model.names, 32, (64, 64), 1, False)
    im = torch.zeros(1, 3, 64, 64)
    for i, fmt in enumerate(("onnx", "torchscript", "onnx")):
        path = export.export_format(fmt, model, im, tmp_path / f"m{i}.{fmt}", meta)
        assert [m.training for m in model.modules()] == flags and not model.detect.export
        torch.testing.assert_close(load_backend(path)(x), expected, atol=1e-3, rtol=1e-4)


@pytest.mark.slow
def test_output_location_flags(small_weights, tmp_path, monkeypatch):
    """--project/--name (incremented unless --exist-ok) instead of the weights' folder, which is left untouched."""
    before = sorted(p.name for p in small_weights.parent.iterdir())
    args = ["--weights", str(small_weights), "--include", "onnx", "--imgsz", "64", "--project", str(tmp_path / "out")]
    first = export.main([*args, "--name", "run"])["onnx"]
    second = export.main([*args, "--name", "run"])["onnx"]
    third = export.main([*args, "--name", "run", "--exist-ok"])["onnx"]
    assert first == tmp_path / "out" / "run" / "yolov5n.onnx" and second == tmp_path / "out" / "run2" / "yolov5n.onnx"
    assert third == first and load_backend(third).imgsz == (64, 64)
    assert export.output_dir(small_weights, None, None, False) == small_weights.parent  # YOLOv5's default
    monkeypatch.chdir(tmp_path)
    default_project = export.output_dir(small_weights, None, "x", False)
    assert default_project == Path("runs/export/x") and default_project.is_dir()
    assert sorted(p.name for p in small_weights.parent.iterdir()) == before
    assert not [p for p in (tmp_path / "out").rglob("*") if ".tmp" in p.name]  # no staged file left behind
