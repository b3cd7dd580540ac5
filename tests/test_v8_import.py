"""ultralytics 8 .pt files import without their code: same model, same outputs; unknown classes refused."""
from __future__ import annotations

import os
import sys
import types

import pytest
import torch

from models import load_checkpoint_dict, load_model
from models.checkpoint import CheckpointError
from models.official import pickle_globals
from models.ultralytics_import import is_ultralytics8, read_ultralytics8
from tests.shared_data import shared_path

REF = "reference/ultralytics"


def test_sample_checkpoint_imports_and_reproduces_outputs(one_thread):
    path = shared_path(REF, "ultralytics_yolov8n_random.pt")
    ref = torch.load(shared_path(REF, "yolov8n_forward.pt"), weights_only=True)
    assert is_ultralytics8(path)
    ckpt = load_checkpoint_dict(path)
    assert ckpt["meta"]["version"] == "8.4.190" and ckpt["stride"] == [8.0, 16.0, 32.0]
    assert len(ckpt["names"]) == 80 and ckpt["names"][:2] == ["person", "bicycle"]
    assert list(ckpt["state_dict"]) == list(ref["state_dict"])
    for k, v in ref["state_dict"].items():
        assert torch.equal(ckpt["state_dict"][k].float(), v.float()), k
    model = load_model(path)
    assert model.yaml["scale"] == "n" and model.names[-1] == "toothbrush"
    with torch.no_grad():
        out = model(ref["input"])[0]
    torch.testing.assert_close(out.transpose(1, 2), ref["eval_out"], atol=2e-3, rtol=0)




@pytest.fixture
def fake_ultralytics(monkeypatch):
    """Classes under ultralytics.* names, so a test can write files that look like ultralytics checkpoints."""
    made = {}
    for name in ("ultralytics", "ultralytics.nn", "ultralytics.nn.tasks", "ultralytics.utils", "ultralytics.utils.evil"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        made[name] = sys.modules[name]
    for mod, cls in (("ultralytics.nn.tasks", "DetectionModel"), ("ultralytics.utils.evil", "Payload")):
        c = type(cls, (), {})
        c.__module__ = mod
        setattr(made[mod], cls, c)
    return made


def test_unknown_classes_are_refused(tmp_path, fake_ultralytics):
    det = fake_ultralytics["ultralytics.nn.tasks"].DetectionModel()
    det.yaml, det.hook = {"nc": 1}, fake_ultralytics["ultralytics.utils.evil"].Payload()
    torch.save({"model": det}, tmp_path / "evil.pt")
    assert "ultralytics.utils.evil.Payload" in pickle_globals(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil\.pt: refusing to load: .*ultralytics\.utils\.evil\.Payload"):
        read_ultralytics8(tmp_path / "evil.pt")
    det.hook = os.system  # a callable by reference: named in the pickle, never called, refused
    torch.save({"model": det}, tmp_path / "system.pt")
    with pytest.raises(CheckpointError, match=r"system\.pt: refusing to load: .*system"):
        load_model(tmp_path / "system.pt")


def test_non_detection_model_is_refused(tmp_path, fake_ultralytics):
    cls = type("ClassificationModel", (), {})
    cls.__module__ = "ultralytics.nn.tasks"
    fake_ultralytics["ultralytics.nn.tasks"].ClassificationModel = cls
    m = cls()
    m.yaml = {"nc": 10}
    torch.save({"model": m}, tmp_path / "cls.pt")
    with pytest.raises(CheckpointError, match=r"cls\.pt: ultralytics\.nn\.tasks\.ClassificationModel is not a detection"):
        read_ultralytics8(tmp_path / "cls.pt")


def test_train_weights_fine_tunes_from_an_ultralytics_file():
    """train.py --weights <ultralytics .pt>: the model is rebuilt from the file's YAML, every tensor that fits moves."""
    from utils.train.options import TrainOptions
    from utils.train.setup import build_model

    path = shared_path(REF, "ultralytics_yolov8n_random.pt")
    ref = torch.load(shared_path(REF, "yolov8n_forward.pt"), weights_only=True)["state_dict"]
    model = build_model(TrainOptions(weights=str(path), cfg=""), 4, {}, torch.device("cpu"))
    assert model.detect.nc == 4 and not model.detect.has_anchors
    sd = model.state_dict()
    moved = [k for k, v in ref.items() if sd[k].shape == v.shape]
    assert all(torch.equal(sd[k], ref[k].to(sd[k].dtype)) for k in moved)
    # only the class branch starts fresh: its width is max(P3 channels, min(nc, 100)) = 64 for 4 classes, 80 for 80
    assert sorted({k.split(".")[2] for k in ref if k not in moved}) == ["cv3"] and len(moved) > 300
