"""Run a Model's YAML rows one by one, exposing each row's module, inputs and output."""
from __future__ import annotations

from typing import Any, Iterator

import torch
import torch.nn as nn

from models.rows import row_input


def iter_rows(model: nn.Module, x: torch.Tensor, keep: set[int] | None = None
              ) -> Iterator[tuple[nn.Module, Any, Any]]:
    """Yield (row module, its input, its output) in order; outputs needed later (model.save + keep) are kept."""
    saved = set(getattr(model, "save", [])) | (keep or set())
    outs: dict[int, Any] = {}
    for m in model.model:
        inp = row_input(m, x, outs)
        x = m(inp)
        yield m, inp, x
        if m.i in saved:
            outs[m.i] = x


def row_outputs(model: nn.Module, x: torch.Tensor, layers: list[int]) -> dict[int, torch.Tensor]:
    """Outputs of the chosen rows (stops after the last one)."""
    want, out = set(layers), {}
    n = len(model.model)
    bad = [i for i in want if not 0 <= i < n]
    if bad:
        raise IndexError(f"layers {bad} do not exist: the model has rows 0..{n - 1}")
    for m, _, y in iter_rows(model, x):
        if m.i in want:
            out[m.i] = y
        if len(out) == len(want):
            break
    return out
