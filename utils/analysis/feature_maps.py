"""Feature maps of chosen YAML rows for one image, the first K channels saved as image grids."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from utils.analysis.rows import row_outputs


def capture(model: nn.Module, x: torch.Tensor, layers: list[int]) -> dict[int, torch.Tensor]:
    """Outputs (B, C, H, W) of the chosen rows for input x (eval mode, no grad)."""
    model = model.eval()
    with torch.no_grad():
        out = row_outputs(model, x, layers)
    for i, y in out.items():
        if not isinstance(y, torch.Tensor) or y.ndim != 4:
            raise ValueError(f"layer {i} ({model.model[i].type}) does not output a feature map; "
                             f"choose one of the rows before the Detect head")
    return out


def channel_grid(fmap: torch.Tensor, k: int = 32, cols: int = 8, pad: int = 1) -> np.ndarray:
    """The first k channels of one (C, H, W) map, each scaled to 0..1, tiled into a (rows, cols) float grid."""
    fmap = fmap[:k].detach().float().cpu()
    n, h, w = fmap.shape
    lo = fmap.amin((1, 2), keepdim=True)
    hi = fmap.amax((1, 2), keepdim=True)
    fmap = (fmap - lo) / (hi - lo).clamp(min=1e-12)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), np.nan, dtype=np.float32)
    for c in range(n):
        r, q = divmod(c, cols)
        grid[r * (h + pad):r * (h + pad) + h, q * (w + pad):q * (w + pad) + w] = fmap[c].numpy()
    return grid


def save_feature_maps(maps: dict[int, torch.Tensor], out_dir: str | Path, k: int = 32, cols: int = 8,
                      image: np.ndarray | None = None, types: dict[int, str] | None = None) -> list[Path]:
    """One PNG per layer (`layer<i>_features.png`): the input image, then the channel grid; returns the paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, y in sorted(maps.items()):
        grid = channel_grid(y[0], k, cols)
        ncols = 2 if image is not None else 1
        fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols + 4, 6), squeeze=False,
                                 gridspec_kw={"width_ratios": [1, 2][:ncols] if ncols == 2 else [1]})
        if image is not None:
            axes[0, 0].imshow(image[..., ::-1])
            axes[0, 0].set_title("input")
        ax = axes[0, -1]
        ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", interpolation="nearest")
        kind = (types or {}).get(i, "")
        ax.set_title(f"layer {i} {kind}: first {min(k, y.shape[1])} of {y.shape[1]} channels, "
                     f"{y.shape[2]}x{y.shape[3]}", fontsize=10)
        for a in axes.ravel():
            a.axis("off")
        fig.tight_layout()
        path = out_dir / f"layer{i}_features.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
