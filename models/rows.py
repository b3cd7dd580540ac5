"""How a YAML row finds its input: the one rule Model's forward and the analysis tools share."""
from __future__ import annotations

from typing import Any

import torch.nn as nn


def row_input(m: nn.Module, x: Any, outputs: Any) -> Any:
    """The input of row `m`: `x` (the previous row's output) for from -1, else the outputs its `from` names.

    `outputs` is indexed by absolute row number (a list of every row so far, or a dict of the saved ones);
    a negative index counts back from the row itself, as in YOLOv5 YAMLs."""
    f = m.f
    if f == -1:
        return x
    if isinstance(f, int):
        return outputs[f % m.i]
    return [x if j == -1 else outputs[j % m.i] for j in f]


def input_rows(m: nn.Module) -> list[int]:
    """Absolute indices of the rows `m` reads, in `from` order (-1 is the row just before it)."""
    return [m.i - 1 if j == -1 else j % m.i for j in ([m.f] if isinstance(m.f, int) else m.f)]
