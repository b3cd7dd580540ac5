"""Checkpoints: our safe format round trip, official ultralytics .pt import, refusal of code-running pickles."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
import zipfile

import pytest
import torch

import models
from models.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from models.yolo import Model
from tests.shared_data import REPO, shared_path


@pytest.fixture(scope="module")
def official():
    return models.load_model(shared_path("weights", "yolov5n.pt"))


@pytest.fixture(scope="module")
def forward_ref():
    return torch.load(shared_path("reference", "yolov5", "yolov5n_forward.pt"), weights_only=True)


def test_official_checkpoint_imports_name_for_name(official):
    assert official.names[:3] == ["person", "bicycle", "car"] and len(official.names) == 80
    assert official.stride.tolist() == [8.0, 16.0, 32.0]
    assert sum(p.numel() for p in official.parameters()) == 1_872_157
    assert not official.training and next(official.parameters()).dtype == torch.float32


@pytest.mark.parametrize("size", [320, 640])
def test_official_eval_outputs(official, forward_ref, size):
    with torch.no_grad():
        out, raw = official(forward_ref[f"input_{size}"])
    ref = forward_ref[f"eval_out_{size}"]
    torch.testing.assert_close(out[..., 4:], ref[..., 4:], atol=1e-4, rtol=0)
    torch.testing.assert_close(out[..., :4], ref[..., :4], atol=2e-3, rtol=1e-4)
    if f"eval_raw_{size}" in forward_ref:
        for a, b in zip(raw, forward_ref[f"eval_raw_{size}"]):
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-4)


def test_official_fused_and_train_mode_outputs(official, forward_ref):
    fused = copy.deepcopy(official).fuse()
    with torch.no_grad():
        out, raw = fused(forward_ref["input_320"])
    ref = forward_ref["fused_eval_out_320"]
    torch.testing.assert_close(out[..., 4:], ref[..., 4:], atol=1e-4, rtol=0)
    torch.testing.assert_close(out[..., :4], ref[..., :4], atol=2e-3, rtol=1e-4)
    for a, b in zip(raw, forward_ref["fused_eval_raw_320"]):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-4)
    train_model = copy.deepcopy(official).train()
    with torch.no_grad():
        train_raw = train_model(forward_ref["input_320"])
    for a, b in zip(train_raw, forward_ref["train_raw_320"]):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-4)


def test_our_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = Model("yolov5n.yaml", nc=3).eval()
    model.names = ["a", "b", "c"]
    path = save_checkpoint(tmp_path / "weights" / "m.pt", model, epoch=3, hyp={"lr0": 0.01})
    assert sorted(os.listdir(path.parent)) == ["m.pt"]  # the temporary file was renamed, nothing left behind
    raw = torch.load(path, weights_only=True)  # plain data and tensors only
    assert raw["epoch"] == 3 and raw["names"] == ["a", "b", "c"] and raw["yaml"]["nc"] == 3
    loaded = models.load_model(path)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], model(x)[0], atol=0, rtol=0)
    assert loaded.names == ["a", "b", "c"]
    fused = models.load_model(path, fuse=True)
    with torch.no_grad():
        torch.testing.assert_close(fused(x)[0], model(x)[0], atol=1e-3, rtol=1e-4)


def test_our_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        models.load_model(tmp_path / "missing.pt")
    torch.save({"some": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a yolo-yaml/1 checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    model = Model("yolov5n.yaml", nc=3)
    save_checkpoint(tmp_path / "m.pt", model)
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    ckpt["yaml"]["nc"] = 4  # weights no longer fit the YAML
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        models.load_model(tmp_path / "bad.pt")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _official_like_pickle(path, payload):
    """A torch zip file that names an ultralytics model class, with a code-running payload inside."""
    import models.official as official_mod

    class Model:  # noqa: D401 (pickled under the ultralytics name)
        pass
    Model.__module__, Model.__qualname__ = "models.yolo", "Model"
    obj = Model()
    obj.__dict__.update({"yaml": {"nc": 1}, "payload": payload})
    sys.modules.setdefault("models.yolo", __import__("models.yolo", fromlist=["x"]))
    saved = getattr(sys.modules["models.yolo"], "Model")
    try:
        sys.modules["models.yolo"].Model = Model
        torch.save({"model": obj}, path)
    finally:
        sys.modules["models.yolo"].Model = saved
    assert official_mod.is_official(path)


def test_code_running_pickles_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    plain = tmp_path / "plain.pt"
    torch.save({"model": _RunsCode(marker)}, plain)
    with pytest.raises(Exception) as e:
        models.load_model(plain)
    assert "system" in str(e.value) or "Unsupported global" in str(e.value)
    disguised = tmp_path / "disguised.pt"
    _official_like_pickle(disguised, _RunsCode(marker))
    with pytest.raises(CheckpointError, match=r"refusing to load: the pickle references .*system"):
        models.load_model(disguised)
    assert not marker.exists()


def test_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "old.pt"
    path.write_bytes(b"\x80\x02}q\x00.")  # a legacy raw pickle
    with pytest.raises(Exception):
        models.load_model(path)
    assert not zipfile.is_zipfile(path)


@pytest.mark.slow
def test_cli_prints_table_and_summary():
    out = subprocess.run([sys.executable, "models/yolo.py", "--cfg", "yolov5s.yaml"], cwd=REPO, capture_output=True,
                         text=True, check=True)
    text = out.stdout + out.stderr
    assert "models.common.C3" in text and "[64, 64, 1]" in text
    assert "YOLOv5s summary:" in text and "7235389 parameters" in text and "16.6 GFLOPs" in text
