"""Training checkpoints: last.pt / best.pt in the safe format with a `train_state` for --resume."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.checkpoint import CheckpointError, atomic_save, make_checkpoint, plain_state_dict, read_checkpoint

STATE_KEY = "train_state"


def training_checkpoint(ema_model: nn.Module, raw_model: nn.Module, names: list[str], *, epoch: int,
                        best_fitness: float, ema_updates: int, optimizer: torch.optim.Optimizer,
                        scaler_state: dict, hyp: dict, opt: dict, results: list[float]) -> dict:
    """Checkpoint dict: EMA weights (float32) as `state_dict`, everything --resume needs under `train_state`."""
    state = {
        "epoch": int(epoch),
        "best_fitness": float(best_fitness),
        "model": plain_state_dict(raw_model),
        "ema_updates": int(ema_updates),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler_state,
        "hyp": dict(hyp),
        "opt": dict(opt),
        "results": [float(x) for x in results],
    }
    ckpt = make_checkpoint(ema_model, names, **{STATE_KEY: state})
    # torch.__version__ is a TorchVersion object, which weights_only loading refuses: store a plain str.
    ckpt["meta"] = {k: str(v) for k, v in ckpt["meta"].items()}
    return ckpt


def save_training_checkpoint(path: str | Path, ckpt: dict) -> Path:
    """Write atomically (a killed process leaves the previous file intact)."""
    return atomic_save(ckpt, path)


def read_train_state(path: str | Path) -> tuple[dict, dict]:
    """(checkpoint, its train_state) of a resumable last.pt; clear errors for finished or foreign files."""
    ckpt = read_checkpoint(path)
    state = ckpt.get(STATE_KEY)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: no training state to resume from (not written by train.py)")
    missing = [k for k in ("epoch", "model", "optimizer", "ema_updates", "opt", "hyp") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: training is finished or the state is stripped (missing {missing}); "
                              "nothing to resume")
    return ckpt, state


def strip_checkpoint(path: str | Path) -> Path:
    """After training: drop the optimizer and raw weights, store the EMA weights as float16 (small file)."""
    ckpt = read_checkpoint(path)
    state = ckpt.get(STATE_KEY, {})
    keep = {k: state[k] for k in ("epoch", "best_fitness", "hyp", "opt", "results") if k in state}
    ckpt[STATE_KEY] = {**keep, "finished": True}
    ckpt["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    return atomic_save(ckpt, path)


def restore(state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, ema: Any,
            ema_weights: dict, scaler: Any) -> None:
    """Load raw weights, optimizer, EMA (weights and update count) and scaler from a train_state."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    ema.load_state_dict({"ema": {k: v.float() if v.is_floating_point() else v for k, v in ema_weights.items()},
                         "updates": state["ema_updates"]})
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
