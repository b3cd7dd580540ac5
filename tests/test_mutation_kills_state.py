"""utils/train/state.py in-process: what a checkpoint stores is what --resume restores, field by field.

The resume tests run train.py in a subprocess, which mutation testing cannot see; these check the same
contract directly (docs/mutation_testing.md lists the mutants they were written against).
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from models.checkpoint import CheckpointError, make_checkpoint
from models.yolo import Model
from utils.ema import ModelEMA
from utils.train.state import (STATE_KEY, read_train_state, restore, save_training_checkpoint, strip_checkpoint,
                               training_checkpoint)

NAMES = ["circle", "square"]
HYP = {"lr0": 0.01, "momentum": 0.9}
OPT = {"epochs": 5, "batch_size": 2}
RESULTS = [0.5, 0.25, 0.125, 0.0625, 0.1, 0.2, 0.3]
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def base() -> Model:
    """One freshly initialised model (built once: building takes seconds); tests work on copies."""
    torch.manual_seed(0)
    return Model("yolov5n.yaml", nc=len(NAMES))


def _fresh(base: Model) -> tuple[Model, torch.optim.Optimizer, ModelEMA]:
    model = copy.deepcopy(base)
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True), ModelEMA(model)


def _trained(base: Model) -> tuple[Model, torch.optim.Optimizer, ModelEMA, torch.amp.GradScaler]:
    """Two SGD steps with EMA updates, so weights, momentum buffers and EMA all differ from a fresh start."""
    model, optimizer, ema = _fresh(base)
    torch.manual_seed(1)
    for _ in range(2):
        loss = sum(p.float().pow(2).mean() for p in model.train()(torch.rand(2, 3, 32, 32)))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        ema.update(model)
    return model, optimizer, ema, torch.amp.GradScaler("cpu", init_scale=512.0)


def _equal_state(a: object, b: object) -> bool:
    """Nested dicts / lists / tensors equal exactly (dtype included)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal_state(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, base: Model) -> tuple[Path, tuple]:
    model, optimizer, ema, scaler = trained = _trained(base)
    ckpt = training_checkpoint(ema.ema, model, NAMES, epoch=3, best_fitness=0.375, ema_updates=ema.updates,
                               optimizer=optimizer, scaler_state=scaler.state_dict(), hyp=HYP, opt=OPT,
                               results=RESULTS)
    path = tmp_path_factory.mktemp("ckpt") / "weights" / "last.pt"
    assert save_training_checkpoint(path, ckpt) == path
    return path, trained


def test_checkpoint_stores_every_resume_field(saved: tuple[Path, tuple]) -> None:
    path, (model, optimizer, ema, scaler) = saved
    ckpt, state = read_train_state(path)
    assert state["epoch"] == 3 and state["best_fitness"] == 0.375 and state["ema_updates"] == 2 == ema.updates
    assert state["hyp"] == HYP and state["opt"] == OPT and state["results"] == RESULTS
    assert _equal_state(state["model"], model.state_dict()), "raw (non-EMA) weights"
    assert _equal_state(ckpt["state_dict"], ema.ema.state_dict()), "EMA weights, float32"
    assert not _equal_state(state["model"], ckpt["state_dict"])
    assert _equal_state(state["optimizer"], optimizer.state_dict())
    assert state["scaler"] == scaler.state_dict() and state["scaler"]["scale"] == 512.0
    assert all(isinstance(v, str) for v in ckpt["meta"].values())
    assert ckpt["names"] == NAMES


def test_restore_gives_back_weights_optimizer_ema_and_scaler(saved: tuple[Path, tuple], base: Model) -> None:
    path, (model, optimizer, ema, scaler) = saved
    ckpt, state = read_train_state(path)
    model2, optimizer2, ema2 = _fresh(base)
    scaler2 = torch.amp.GradScaler("cpu")
    restore(state, model2, optimizer2, ema2, ckpt["state_dict"], scaler2)
    assert _equal_state(model2.state_dict(), model.state_dict())
    assert _equal_state(optimizer2.state_dict(), optimizer.state_dict())
    assert ema2.updates == ema.updates == 2
    assert _equal_state(ema2.ema.state_dict(), ema.ema.state_dict())
    assert scaler2.get_scale() == 512.0


def test_restore_skips_an_empty_scaler_state(saved: tuple[Path, tuple], base: Model) -> None:
    path, _ = saved
    ckpt, state = read_train_state(path)
    model2, optimizer2, ema2 = _fresh(base)
    scaler2 = torch.amp.GradScaler("cpu", init_scale=8.0)
    restore({**state, "scaler": {}}, model2, optimizer2, ema2, ckpt["state_dict"], scaler2)
    assert scaler2.get_scale() == 8.0


def test_restore_casts_half_ema_weights_to_float(saved: tuple[Path, tuple], base: Model) -> None:
    path, _ = saved
    ckpt, state = read_train_state(path)
    model2, optimizer2, ema2 = _fresh(base)
    half = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    restore(state, model2, optimizer2, ema2, half, torch.amp.GradScaler("cpu"))
    for k, v in ema2.ema.state_dict().items():
        assert v.dtype == ckpt["state_dict"][k].dtype
        assert torch.equal(v, half[k].to(v.dtype))


def test_strip_keeps_only_the_summary_and_half_ema(saved: tuple[Path, tuple], tmp_path: Path) -> None:
    path, (_, _, ema, _) = saved
    stripped = tmp_path / "best.pt"
    stripped.write_bytes(path.read_bytes())
    assert strip_checkpoint(stripped) == stripped
    ckpt = torch.load(stripped, map_location="cpu", weights_only=True)
    assert ckpt[STATE_KEY] == {"epoch": 3, "best_fitness": 0.375, "hyp": HYP, "opt": OPT, "results": RESULTS,
                               "finished": True}
    ema_state = ema.ema.state_dict()
    assert ckpt["state_dict"].keys() == ema_state.keys()
    for k, v in ckpt["state_dict"].items():
        want = ema_state[k].half() if ema_state[k].is_floating_point() else ema_state[k]
        assert v.dtype == want.dtype and torch.equal(v, want), k
    assert stripped.stat().st_size < path.stat().st_size / 2
    with pytest.raises(CheckpointError, match="training is finished"):
        read_train_state(stripped)


def test_strip_of_a_plain_checkpoint_marks_it_finished(tmp_path: Path, base: Model) -> None:
    model, _, _ = _fresh(base)
    path = tmp_path / "plain.pt"
    torch.save(make_checkpoint(model, NAMES), path)
    strip_checkpoint(path)
    assert torch.load(path, map_location="cpu", weights_only=True)[STATE_KEY] == {"finished": True}


def test_a_checkpoint_without_train_state_is_refused(tmp_path: Path, base: Model) -> None:
    model, _, _ = _fresh(base)
    path = tmp_path / "plain.pt"
    torch.save(make_checkpoint(model, NAMES), path)
    with pytest.raises(CheckpointError, match="no training state"):
        read_train_state(path)
    torch.save(make_checkpoint(model, NAMES, **{STATE_KEY: "epoch 3"}), path)
    with pytest.raises(CheckpointError, match="no training state"):
        read_train_state(path)


@pytest.mark.parametrize("key", ["epoch", "model", "optimizer", "ema_updates", "opt", "hyp"])
def test_each_missing_resume_field_is_named(saved: tuple[Path, tuple], tmp_path: Path, key: str) -> None:
    path, _ = saved
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    del ckpt[STATE_KEY][key]
    broken = tmp_path / "broken.pt"
    torch.save(ckpt, broken)
    with pytest.raises(CheckpointError, match=rf"missing \['{key}'\]"):
        read_train_state(broken)
