"""Deployment backends end to end: ONNX Runtime and OpenVINO exports of yolov5n give PyTorch's val.py figures on
coco128 and its detections on dog.jpg; the INT8 IR's mAP drop is bounded; bad exports fail with the file's name."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import detect
import export
import val
from models.backend_openvino import shared_core
from models.backends import load_backend
from tests.detections import assert_same_detections
from tests.no_gc import gc_disabled
from tests.shared_data import shared_path
from utils.cli import UserError

ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed (requirements-dev.txt)")
ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (requirements-deploy.txt)")

ROOT = Path(__file__).resolve().parents[1]
IMGSZ = 320
N_IMAGES = 32  # the first coco128 images (the full set at 640: bench/backends.py and the README table)
# yolov5n at 320 on those images (val.py defaults, batch 16): the INT8 IR (NNCF calibrated on the same images, head
# decode kept in float) scored above PyTorch's mAP50-95 (small-set noise; on all of coco128 at 640 the README states
# the drop). The bound allows a real but small loss, not a broken quantization.
INT8_MAX_DROP = 0.02


def coco128_subset(folder, n: int = N_IMAGES):
    """A data YAML whose val (and train) split lists the first n coco128 images (labels beside them in shared/)."""
    import yaml

    from utils.data.data_yaml import load_data_yaml
    from utils.data.files import list_image_files

    cfg = load_data_yaml(shared_path("datasets", "coco128", "coco128.yaml"))
    (folder / "images.txt").write_text("\n".join(list_image_files(cfg.sources("val"))[:n]) + "\n")
    f = folder / "coco128_subset.yaml"
    f.write_text(yaml.safe_dump({"path": str(folder), "train": "images.txt", "val": "images.txt", "names": cfg.names}))
    return f


EXPORTS_ENV = "DEPLOY_EXPORTS"  # a folder build_exports filled: rerun cases by hand without building them again
MANIFEST = "exports.json"


def build_exports(root: Path) -> tuple[Path, dict[str, Path]]:
    """yolov5n at 320 into `root`: dynamic ONNX + OpenVINO fp32, a static ONNX with in-graph NMS, the coco128 subset
    YAML; their paths also go to root/exports.json."""
    root.mkdir(parents=True, exist_ok=True)
    w = root / "yolov5n.pt"
    shutil.copy(shared_path("weights", "yolov5n.pt"), w)
    files = export.run(w, include=("onnx", "openvino"), imgsz=(IMGSZ,), dynamic=True, project=root, name="fp32")
    files["nms"] = export.run(w, include=("onnx",), imgsz=(IMGSZ,), nms=True, project=root, name="nms")["onnx"]
    files["data"] = coco128_subset(root)
    (root / MANIFEST).write_text(json.dumps({k: str(v) for k, v in files.items()}))
    return w, files


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """(weights, {format: path}, folder): the exports in $DEPLOY_EXPORTS when it is set, else built here. Cases
    write only into their own tmp_path or below the folder under new names."""
    if os.environ.get(EXPORTS_ENV):
        root = Path(os.environ[EXPORTS_ENV])
        files = {k: Path(v) for k, v in json.loads((root / MANIFEST).read_text()).items()}
        return root / "yolov5n.pt", files, root
    root = tmp_path_factory.mktemp("deploy")
    return (*build_exports(root), root)


@pytest.mark.slow
def test_exports_read_their_metadata(exports):
    _, files, _ = exports
    for key in ("onnx", "openvino", "nms"):
        b = load_backend(files[key])
        assert b.names[16] == "dog" and len(b.names) == 80 and b.stride == 32 and b.has_objectness
    assert load_backend(files["openvino"]).kind == "openvino" and load_backend(files["openvino"]).dynamic
    nms = load_backend(files["nms"])
    assert nms.nms == {"conf_thres": 0.25, "iou_thres": 0.45, "max_det": 300, "multi_label": False}
    assert not nms.dynamic and nms.imgsz == (IMGSZ, IMGSZ)
    assert_in_graph_thresholds_follow_the_backend(files["nms"])
    assert files["openvino"].name == "yolov5n_openvino_model" and (files["openvino"] / "yolov5n.bin").is_file()
    assert load_backend(files["openvino"] / "yolov5n.xml").names == load_backend(files["onnx"]).names
    assert_freed_when_dropped(files)


def assert_in_graph_thresholds_follow_the_backend(nms_export: Path) -> None:
    """A Backend over an in-graph NMS export (val.py's path) feeds the graph the thresholds with_thresholds set."""
    import cv2

    from models.backend_export import with_thresholds
    from utils.data.augment import letterbox

    im = letterbox(cv2.imread(str(shared_path("darknet", "dog.jpg"))), IMGSZ, auto=False)[0]
    x = torch.from_numpy(np.ascontiguousarray(im[..., ::-1].transpose(2, 0, 1)))[None].float() / 255
    backend = load_backend(nms_export)
    low = with_thresholds(backend, 0.05, 0.45, multi_label=False)(x)[0]
    high = with_thresholds(backend, 0.6, 0.45, multi_label=False)(x)[0]
    assert backend.session.nms["conf_thres"] == 0.6
    assert len(high) < len(low) and float(high[:, 4].min()) >= 0.6 and float(low[:, 4].min()) < 0.6


def assert_freed_when_dropped(files: dict) -> None:
    """No reference cycle: a dropped backend frees its runtime's session at once, with the garbage collector off (one
    left to a collection ran its destructor in a forked DataLoader worker, which hung: utils/data/worker_fork.py)."""
    import weakref

    with gc_disabled():
        for key in ("openvino", "nms"):  # the dynamic ONNX one: tests/test_export.py
            backend = load_backend(files[key])
            backend(torch.zeros(1, 3, IMGSZ, IMGSZ))
            dropped = weakref.ref(backend), weakref.ref(backend.session)
            del backend
            assert [r() for r in dropped] == [None, None], key


@pytest.mark.slow
def test_detections_on_dog_equal_pytorch(exports, tmp_path):
    """detect.py on Darknet's dog.jpg: every export (also the in-graph NMS one) finds PyTorch's boxes."""
    w, files, _ = exports
    dog = shared_path("darknet", "dog.jpg")
    runs = str(tmp_path / "runs")
    _, ref = detect.run(w, dog, imgsz=[IMGSZ], auto=False, nosave=True, project=runs)
    assert len(ref[0][2]) >= 3  # dog, bicycle, truck (at least)
    for key in ("onnx", "openvino", "nms"):
        _, res = detect.run(files[key], dog, imgsz=[IMGSZ], auto=False, nosave=True, project=runs)
        assert_same_detections(res[0][2], ref[0][2], box_px=1.0, what=key)  # boxes are rounded to whole pixels


def _metric(metrics: dict) -> float:
    """mAP50-95 from a val.py metrics.json."""
    return float(metrics["mAP50_95"])


def _map(weights, data, tmp_path, **kw) -> float:
    return val.run(data, weights, imgsz=IMGSZ, batch_size=16, project=str(tmp_path / "val"), plots=False, **kw)[0][3]


@pytest.mark.slow
def test_val_map_equals_pytorch_on_coco128(exports, tmp_path):
    """fp32 exports: val.py mAP50-95 on coco128 images equal to PyTorch's within 0.001 (same rect batches)."""
    w, files, _ = exports
    data = files["data"]
    pt = _map(w, data, tmp_path)
    assert pt > 0.2  # a real model on real images
    for key in ("onnx", "openvino"):
        assert _map(files[key], data, tmp_path) == pytest.approx(pt, abs=1e-3), key


@pytest.mark.slow
def test_int8_openvino_map_drop(exports, tmp_path):
    """NNCF INT8 (calibrated on the coco128 images): runs through val.py and loses at most INT8_MAX_DROP mAP50-95."""
    pytest.importorskip("nncf", reason="NNCF is not installed (requirements-deploy.txt)")
    w, files, root = exports
    data = files["data"]
    # export.py's and val.py's command lines, as users run them (in this process they run as well since the
    # OpenVINO Cores stopped leaving a freed signal stack behind: models/backend_openvino.shared_core)
    cmd = [sys.executable, str(ROOT / "export.py"), "--weights", str(w), "--include", "openvino", "--imgsz",
           str(IMGSZ), "--dynamic", "--int8", "--data", str(data), "--project", str(root), "--name", "int8"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    ir = root / "int8" / "yolov5n_int8_openvino_model"
    assert ir.is_dir()
    vcmd = [sys.executable, str(ROOT / "val.py"), "--weights", str(ir), "--data", str(data), "--imgsz", str(IMGSZ),
            "--batch-size", "16", "--project", str(tmp_path / "val"), "--name", "int8"]
    vout = subprocess.run(vcmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert vout.returncode == 0, vout.stderr[-2000:]
    q = json.loads((tmp_path / "val" / "int8" / "metrics.json").read_text())
    pt = _map(w, data, tmp_path)
    q = _metric(q)
    assert q > 0.2 and pt - q <= INT8_MAX_DROP, f"mAP50-95 PyTorch {pt:.4f}, INT8 {q:.4f}"


# bf16 keeps 8 significant bits: on dog.jpg at 320 and 640 the boxes moved by at most 1 px and the confidences by
# at most 0.023 from the f32 run; the bounds allow that, not a wrong class or a lost box
BF16_BOX_PX, BF16_CONF, BF16_MAX_MAP_DIFF = 3.0, 0.03, 0.01


def _cpu_has_bf16() -> bool:
    return "BF16" in shared_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@pytest.mark.slow
def test_openvino_bf16(exports, tmp_path):
    """--bf16 on an OpenVINO IR: f32's detections on dog.jpg within bf16's precision and its mAP50-95 within 0.01;
    a CPU without bf16 gets a clear error; --compile is refused."""
    _, files, _ = exports
    with pytest.raises(UserError, match="--compile applies to PyTorch weights"):
        load_backend(files["openvino"], compile=True)
    if not _cpu_has_bf16():
        with pytest.raises(UserError, match="--bf16: OpenVINO finds neither"):
            load_backend(files["openvino"], bf16=True)
        return
    dog, runs = shared_path("darknet", "dog.jpg"), str(tmp_path / "runs")
    _, f32 = detect.run(files["openvino"], dog, imgsz=[IMGSZ], auto=False, nosave=True, project=runs)
    _, bf16 = detect.run(files["openvino"], dog, imgsz=[IMGSZ], auto=False, nosave=True, project=runs, bf16=True)
    assert len(f32[0][2]) >= 3
    assert_same_detections(bf16[0][2], f32[0][2], box_px=BF16_BOX_PX, conf_atol=BF16_CONF, what="bf16")
    assert not np.array_equal(bf16[0][2], f32[0][2])  # bf16 really ran: the confidences move in their 3rd digit
    data = files["data"]
    assert _map(files["openvino"], data, tmp_path, bf16=True) == pytest.approx(
        _map(files["openvino"], data, tmp_path), abs=BF16_MAX_MAP_DIFF)


@pytest.mark.slow
def test_openvino_compiles_recurring_shapes(exports, tmp_path):
    """A dynamic IR runs a shape on its dynamic compilation until the shape has come `static_after` times, then on
    a static one with the same output; a shape seen less often stays dynamic; an IR fixed to one shape never adds
    one."""
    from models.backend_openvino import open_openvino

    _, files, _ = exports
    session = open_openvino(files["openvino"], static_after=3)
    rng = np.random.default_rng(0)
    x, other = rng.random((1, 3, IMGSZ, IMGSZ), np.float32), rng.random((1, 3, IMGSZ, IMGSZ - 64), np.float32)
    first = session.run(x)
    session.run(other)
    session.run(x)
    assert not session.static_shapes.compiled
    third = session.run(x)  # the third call of x's shape compiles it for that shape
    assert list(session.static_shapes.compiled) == [x.shape]
    assert next(iter(session.static_shapes.compiled.values()))[0].inputs[0].get_partial_shape().is_static
    np.testing.assert_allclose(third, first, rtol=1e-5, atol=1e-3)  # f32: the same figures as the dynamic one
    np.testing.assert_allclose(session.run(other), load_backend(files["onnx"])(torch.from_numpy(other)).numpy(),
                               rtol=1e-4, atol=2e-3)
    assert list(session.static_shapes.compiled) == [x.shape]

    model = shared_core().read_model(str(files["openvino"] / "yolov5n.xml"))
    model.reshape([1, 3, IMGSZ, IMGSZ])
    ov.save_model(model, str(tmp_path / "fixed_openvino_model" / "fixed.xml"), compress_to_fp16=False)
    fixed = open_openvino(tmp_path / "fixed_openvino_model", static_after=1)
    np.testing.assert_allclose(fixed.run(x), first, rtol=1e-5, atol=1e-3)
    assert fixed.static_shapes is None


def _signal_stack_is_mapped() -> bool:
    """This thread's alternate signal stack, if it has one, lies in mapped memory (sigaltstack, mincore)."""
    import ctypes
    import mmap

    class StackT(ctypes.Structure):
        _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]

    libc = ctypes.CDLL(None, use_errno=True)
    ss = StackT()
    assert libc.sigaltstack(None, ctypes.byref(ss)) == 0
    if ss.ss_flags & 2 or not ss.ss_sp:  # SS_DISABLE: signals run on the thread's own stack
        return True
    start = ss.ss_sp - ss.ss_sp % mmap.PAGESIZE
    pages = (ss.ss_sp + ss.ss_size - start + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    return libc.mincore(ctypes.c_void_p(start), ctypes.c_size_t(pages * mmap.PAGESIZE),
                        ctypes.create_string_buffer(pages)) == 0  # -1 (ENOMEM) where a page is unmapped


@pytest.mark.slow
def test_openvino_backends_dropped_in_any_order_keep_signals_working(exports):
    """Two OpenVINO backends dropped in the order they were made: this thread then still takes a signal (with a
    Core each, the second Core put back the first one's freed signal stack and the signal was a SIGSEGV)."""
    import signal
    import threading

    _, files, _ = exports
    x = torch.zeros(1, 3, IMGSZ, IMGSZ)
    first, second = load_backend(files["openvino"]), load_backend(files["openvino"])
    first(x), second(x)
    del first, second
    assert _signal_stack_is_mapped()
    got = []
    before = signal.signal(signal.SIGUSR1, lambda *_: got.append(1))
    try:  # CPython's C handler runs on the alternate stack (SA_ONSTACK), as the DataLoader's SIGCHLD handler does
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, before)
    assert got == [1]


@pytest.mark.slow
def test_backend_flag_picks_provider_and_device(exports):
    _, files, _ = exports
    x = torch.rand(1, 3, IMGSZ, IMGSZ)
    torch.testing.assert_close(load_backend(files["onnx"], runtime="cpu")(x),
                               load_backend(files["onnx"], runtime="CPUExecutionProvider")(x))
    torch.testing.assert_close(load_backend(files["openvino"], runtime="CPU")(x), load_backend(files["onnx"])(x),
                               atol=2e-3, rtol=1e-4)
    with pytest.raises(UserError, match="TensorrtExecutionProvider is not available"):
        load_backend(files["onnx"], runtime="tensorrt")
    with pytest.raises(UserError, match="OpenVINO device not available"):
        load_backend(files["openvino"], runtime="NPU")
    with pytest.raises(UserError, match="apply to PyTorch weights"):
        load_backend(files["onnx"], compile=True)


@pytest.mark.slow
def test_bad_exports_name_the_file(exports, tmp_path):
    """Truncated, corrupt, metadata-less and mismatched exports: a UserError naming the file, not a runtime crash."""
    import onnx

    _, files, _ = exports
    data = files["onnx"].read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cut.onnx: not a loadable ONNX model"):
        load_backend(cut)
    proto = onnx.load(str(files["onnx"]))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(UserError, match="bare.onnx: no 'names', 'stride', 'imgsz' in its metadata"):
        load_backend(bare)
    static = load_backend(files["nms"])
    with pytest.raises(UserError, match=r"yolov5n.onnx: static export takes input \(1, 3, 320, 320\)"):
        static(torch.rand(1, 3, 256, 320))
    proto = onnx.load(str(files["nms"]))
    for p in proto.metadata_props:
        p.value = json.dumps([256, 256]) if p.key == "imgsz" else p.value
    lying = tmp_path / "lying.onnx"
    onnx.save(proto, str(lying))
    with pytest.raises(UserError, match=r"lying.onnx: graph input \(1, 3, 320, 320\) does not match its metadata"):
        load_backend(lying)
    proto = onnx.load(str(files["onnx"]))
    for p in proto.metadata_props:
        p.value = json.dumps(["a", "b"]) if p.key == "names" else p.value
    few = tmp_path / "few.onnx"
    onnx.save(proto, str(few))
    with pytest.raises(UserError, match="few.onnx: output rows have 85 values but its metadata's 2 names need 7"):
        load_backend(few)(torch.rand(1, 3, 64, 64))  # dynamic: the width is known once it runs
    ir = tmp_path / "m_openvino_model"
    shutil.copytree(files["openvino"], ir)
    (ir / "yolov5n.bin").write_bytes((ir / "yolov5n.bin").read_bytes()[:1000])
    with pytest.raises(UserError, match="yolov5n.xml: not a loadable OpenVINO model"):
        load_backend(ir)
    (ir / "yolov5n.bin").unlink()
    with pytest.raises(UserError, match="yolov5n.xml: its weights file yolov5n.bin is missing"):
        load_backend(ir)
    ts = tmp_path / "cut.torchscript"
    ts.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(UserError, match="cut.torchscript: not a loadable TorchScript file"):
        load_backend(ts)


@pytest.mark.slow
def test_simplified_onnx_verifies(tmp_path):
    """--simplify (onnxslim): export.run's own check against PyTorch passes and the graph is no larger."""
    pytest.importorskip("onnxslim", reason="onnxslim is not installed (requirements-deploy.txt)")
    import onnx

    w = tmp_path / "yolov5n.pt"
    shutil.copy(shared_path("weights", "yolov5n.pt"), w)
    plain = export.run(w, include=("onnx",), imgsz=(64,), project=tmp_path, name="plain")["onnx"]
    slim = export.run(w, include=("onnx",), imgsz=(64,), simplify=True, project=tmp_path, name="slim")["onnx"]
    assert len(onnx.load(str(slim)).graph.node) < len(onnx.load(str(plain)).graph.node)
    assert load_backend(slim).names == load_backend(plain).names


def test_export_option_errors(tmp_path):
    w = tmp_path / "yolov5n.pt"
    shutil.copy(shared_path("weights", "yolov5n.pt"), w)
    with pytest.raises(UserError, match="--nms is an ONNX option"):
        export.run(w, include=("openvino",), nms=True)
    with pytest.raises(UserError, match="--int8 needs --data"):
        export.run(w, include=("openvino",), int8=True)
    with pytest.raises(UserError, match="--int8 is an OpenVINO option"):
        export.run(w, include=("onnx",), int8=True, data="x.yaml")
