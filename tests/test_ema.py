"""ModelEMA against the official decay values and a hand-checked update."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from tests.shared_data import shared_path
from utils.ema import ModelEMA


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


def test_decay_matches_reference() -> None:
    ref = json.loads(shared_path("reference", "yolov5", "ema_case.json").read_text())
    ema = ModelEMA(_tiny(), decay=ref["decay"], tau=ref["tau"])
    for updates, expect in ref["decays"].items():
        assert ema.decay(int(updates)) == pytest.approx(expect, rel=1e-12, abs=0)


def test_update_by_hand() -> None:
    model = _tiny()
    ema = ModelEMA(model, decay=0.9, tau=1.0, updates=1)
    assert not ema.ema.training
    assert all(not p.requires_grad for p in ema.ema.parameters())
    old = {k: v.clone() for k, v in ema.ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()(torch.randn(4, 3))  # moves BN running stats; num_batches_tracked becomes 1
    ema.update(model)
    assert ema.updates == 2 and isinstance(ema.updates, int)
    d = 0.9 * (1 - math.exp(-2.0))
    new, src = ema.ema.state_dict(), model.state_dict()
    for k, v in new.items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(v, old[k] * d + (1 - d) * src[k])
        else:
            assert torch.equal(v, old[k])  # integer counters are not averaged
    assert new["0.weight"].data_ptr() != src["0.weight"].data_ptr()  # a real copy


def test_state_dict_round_trip_and_update_attr() -> None:
    model = _tiny()
    ema = ModelEMA(model)
    for _ in range(3):
        ema.update(model)
    state = ema.state_dict()
    assert state["updates"] == 3 and isinstance(state["updates"], int)
    other = ModelEMA(_tiny())
    other.load_state_dict(state)
    assert other.updates == 3
    for k, v in other.ema.state_dict().items():
        assert torch.equal(v, ema.ema.state_dict()[k])
    model.names = ["a", "b"]
    model._private = 1
    ema.update_attr(model)
    assert ema.ema.names == ["a", "b"] and not hasattr(ema.ema, "_private")
    assert not ema.ema.training  # model.train() state is not copied
    with pytest.raises(KeyError, match="updates"):
        other.load_state_dict({"ema": state["ema"]})
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(model, decay=1.5)
