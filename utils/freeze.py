"""Freeze the first layers of a YAML model (`--freeze N`, `--freeze 0 1 2`, `--freeze backbone`).

Frozen parameters get `requires_grad=False`. Frozen BatchNorm layers must also stop updating their
running statistics, so each one carries a forward pre-hook that puts it back in eval mode whenever it
runs: `model.train()` may be called by the training loop at any time and these layers still stay in
eval mode, with nothing for the loop to remember.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

FreezeSpec = Union[int, Sequence[int], str]


def parse_freeze_arg(values: Sequence[Union[str, int]]) -> FreezeSpec:
    """CLI values -> spec: ['backbone'] -> 'backbone', ['10'] -> 10 (first ten), ['0', '2'] -> [0, 2]."""
    if list(values) == ["backbone"]:
        return "backbone"
    try:
        ints = [int(v) for v in values]
    except ValueError:
        raise ValueError(f"--freeze takes 'backbone', a number of layers or layer indices, "
                         f"got {list(values)}") from None
    return ints[0] if len(ints) == 1 else ints


def layer_indices(model: nn.Module, spec: FreezeSpec) -> list[int]:
    """The YAML layer indices a spec names: first N, the listed ones, or the `backbone:` rows."""
    n_layers = len(model.model)
    if isinstance(spec, str):
        if spec != "backbone":
            raise ValueError(f"freeze spec must be 'backbone', an int or a list of layer indices, got {spec!r}")
        return list(range(len(model.yaml["backbone"])))
    if isinstance(spec, int):
        if not 0 <= spec <= n_layers:
            raise ValueError(f"cannot freeze the first {spec} layers of a model with {n_layers} layers")
        return list(range(spec))
    bad = [i for i in spec if not isinstance(i, int) or not 0 <= i < n_layers]
    if bad:
        raise ValueError(f"freeze: layer indices {bad} out of range 0..{n_layers - 1}")
    return sorted(set(spec))


def _keep_eval(module: nn.Module, _inputs) -> None:
    """Forward pre-hook of a frozen BatchNorm: use (and never update) its running statistics."""
    if module.training:
        module.eval()


def freeze_layers(model: nn.Module, spec: FreezeSpec) -> list[str]:
    """Freeze the layers named by spec; returns the names of the frozen parameters."""
    model = getattr(model, "module", model)  # DataParallel / DDP
    frozen = []
    for i in layer_indices(model, spec):
        layer = model.model[i]
        for name, p in layer.named_parameters():
            p.requires_grad_(False)
            frozen.append(f"model.{i}.{name}")
        for m in layer.modules():
            if isinstance(m, _BatchNorm) and not getattr(m, "frozen", False):
                m.frozen = True
                m.register_forward_pre_hook(_keep_eval)
                m.eval()
    return frozen
