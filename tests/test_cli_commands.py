"""The command lines the README gives, run as a user runs them (subprocess): detect.py and export.py on a tiny
model, tools/darknet_convert.py to-pt / to-weights on Darknet's yolov4-tiny (a byte-identical round trip)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import detect
from models.backends import load_backend
from models.checkpoint import save_checkpoint
from models.yolo import Model
from tests.shared_data import shared_path

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # subprocesses; conftest.py


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{' '.join(args)}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """A seeded, untrained yolov5n with 3 classes as a checkpoint, and a 96x128 test image."""
    tmp = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    model = Model("yolov5n.yaml", ch=3, nc=3).eval()
    ckpt = save_checkpoint(tmp / "tiny.pt", model, ["a", "b", "c"])
    im = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    cv2.rectangle(im, (20, 20), (70, 60), (255, 255, 255), -1)
    assert cv2.imwrite(str(tmp / "im.png"), im)
    return ckpt, tmp / "im.png"


def _txt_rows(path: Path) -> np.ndarray:
    return np.array([[float(v) for v in ln.split()] for ln in path.read_text().splitlines()]).reshape(-1, 6)


def test_detect_command_line(tiny, tmp_path):
    """`python detect.py --weights tiny.pt --source im.png --img 64 --conf-thres 0.001 --save-txt --save-conf`
    writes the detections detect.run() returns in this process (class exact, box to the %g digits, conf 1e-4)."""
    weights, image = tiny
    _cli("detect.py", "--weights", str(weights), "--source", str(image), "--img", "64", "--conf-thres", "0.001",
         "--save-txt", "--save-conf", "--project", str(tmp_path), "--name", "cli")
    rows = _txt_rows(tmp_path / "cli" / "labels" / "im.txt")
    assert (tmp_path / "cli" / "im.png").is_file()
    _, res = detect.run(str(weights), str(image), imgsz=[64], conf_thres=0.001, nosave=True,
                        project=str(tmp_path), name="api")
    det = torch.from_numpy(res[0][2])
    assert len(rows) == len(det) > 0
    h, w = 96, 128
    xywhn = torch.stack([(det[:, 0] + det[:, 2]) / 2 / w, (det[:, 1] + det[:, 3]) / 2 / h,
                         (det[:, 2] - det[:, 0]) / w, (det[:, 3] - det[:, 1]) / h], 1).numpy()
    np.testing.assert_array_equal(rows[:, 0], det[:, 5].numpy())
    np.testing.assert_allclose(rows[:, 1:5], xywhn, atol=1e-5, rtol=0)  # %g: 6 significant digits
    np.testing.assert_allclose(rows[:, 5], det[:, 4].numpy(), atol=1e-4, rtol=0)


def test_export_command_line(tiny, tmp_path):
    """`python export.py --weights tiny.pt --include torchscript onnx --img 64`: both files load and compute what
    the PyTorch model computes (boxes 1e-3 px, objectness and class scores 1e-5)."""
    src, _ = tiny
    weights = tmp_path / "tiny.pt"
    weights.write_bytes(src.read_bytes())
    _cli("export.py", "--weights", str(weights), "--include", "torchscript", "onnx", "--img", "64")
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = load_backend(weights)(x)[0]
    for suffix in (".torchscript", ".onnx"):
        got = load_backend(weights.with_suffix(suffix))(x)
        got = got[0] if isinstance(got, (list, tuple)) else got
        assert got.shape == want.shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 8), suffix
        torch.testing.assert_close(got[..., :4], want[..., :4], atol=1e-3, rtol=0)
        torch.testing.assert_close(got[..., 4:], want[..., 4:], atol=1e-5, rtol=0)


def test_darknet_convert_readme_round_trip(tmp_path):
    """README: to-pt (with --yaml), detect.py on the converted .pt, to-weights back: the original bytes."""
    cfg, weights = shared_path("darknet", "yolov4-tiny.cfg"), shared_path("darknet", "yolov4-tiny.weights")
    names = shared_path("darknet", "coco.names")
    tool = str(ROOT / "tools" / "darknet_convert.py")
    _cli(tool, "to-pt", "--cfg", str(cfg), "--weights", str(weights), "--names", str(names), "--out",
         "yolov4-tiny.pt", "--yaml", "yolov4-tiny.yaml", cwd=tmp_path)
    assert (tmp_path / "yolov4-tiny.yaml").is_file()
    _cli(tool, "to-weights", "--ckpt", "yolov4-tiny.pt", "--out", "back.weights", cwd=tmp_path)
    back = (tmp_path / "back.weights").read_bytes()
    assert len(back) == weights.stat().st_size == 24_251_276 and back == weights.read_bytes()
