"""Effective receptive field: |d unit / d input| of one output unit of a layer, averaged over random inputs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from utils.analysis.common import save_figure
from utils.analysis.receptive_field import RF
from utils.analysis.rows import row_outputs


@dataclass
class ERF:
    """Gradient magnitude map (H, W), the unit used (y, x), its layer and the input box with non-zero gradient."""

    grad: np.ndarray
    unit: tuple[int, int]
    layer: int
    support: tuple[int, int, int, int]  # y0, x0, y1, x1 (inclusive)


def effective_rf(model: nn.Module, layer: int, imgsz: int = 256, n: int = 4, seed: int = 0) -> ERF:
    """Mean |gradient| of the centre unit (summed over channels) of `layer` w.r.t. random N(0,1) inputs (eval BN)."""
    model = model.eval()
    g = torch.Generator().manual_seed(seed)
    ch = getattr(model, "yaml", {}).get("ch", 3)
    total = torch.zeros(imgsz, imgsz)
    unit = (0, 0)
    for _ in range(n):
        x = torch.randn(1, ch, imgsz, imgsz, generator=g).requires_grad_(True)
        y = row_outputs(model, x, [layer])[layer]
        if not isinstance(y, torch.Tensor) or y.ndim != 4:
            raise ValueError(f"layer {layer} does not output a feature map (got {type(y).__name__})")
        unit = (y.shape[2] // 2, y.shape[3] // 2)
        y[0, :, unit[0], unit[1]].sum().backward()
        total += x.grad[0].abs().sum(0)
    grad = (total / n).numpy()
    ys, xs = np.nonzero(grad)
    support = (int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())) if len(ys) else (0, 0, -1, -1)
    return ERF(grad, unit, layer, support)


def theoretical_box(rf: RF, unit: tuple[int, int]) -> tuple[float, float, float, float]:
    """Input-pixel box (y0, x0, y1, x1, inclusive) of the theoretical field of output unit (y, x)."""
    (sh, sw), (uy, ux) = rf, unit
    cy, cx = sh.centre + uy * sh.jump, sw.centre + ux * sw.jump
    return cy - (sh.size - 1) / 2, cx - (sw.size - 1) / 2, cy + (sh.size - 1) / 2, cx + (sw.size - 1) / 2


def plot_erf(erf: ERF, rf: RF | None, fname: str | Path, title: str = "") -> Path:
    """Save the gradient map (square-root scaled) with the theoretical field drawn as a rectangle."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    g = np.sqrt(erf.grad / max(float(erf.grad.max()), 1e-12))
    ax.imshow(g, cmap="inferno", interpolation="nearest")
    if rf is not None and not any(np.isinf(span.size) for span in rf):  # a global field has no box to draw
        y0, x0, y1, x1 = theoretical_box(rf, erf.unit)
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, ec="cyan", lw=1.5,
                                   label=f"theoretical RF {rf[0].size:g}x{rf[1].size:g}"))
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(-0.5, g.shape[1] - 0.5)
    ax.set_ylim(g.shape[0] - 0.5, -0.5)
    ax.set_title(title or f"effective RF of layer {erf.layer}, unit {erf.unit}", fontsize=10)
    return save_figure(fig, fname, dpi=fig.dpi)
