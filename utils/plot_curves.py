"""Metric pictures as PNG files: PR curve, metric-vs-confidence curves, confusion matrix (matplotlib Agg canvas)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from utils.smooth import smooth

MAX_LEGEND_CLASSES = 20  # per-class legend entries are shown only for fewer classes than this


def _figure(figsize: tuple[float, float] = (9, 6)):
    """A standalone Agg figure (no pyplot, so no global backend or figure registry is touched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, tight_layout=True)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, 1)


def _save(fig, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=200)
    return path


def plot_pr_curve(px: np.ndarray, py: np.ndarray, ap: np.ndarray, path: Path | str,
                  names: Sequence[str] = ()) -> Path:
    """Precision-recall curves: py (len(px), nc) per class, ap (nc, n_iou); the all-class mean in bold."""
    fig, ax = _figure()
    per_class = 0 < py.shape[1] < MAX_LEGEND_CLASSES
    for i in range(py.shape[1]):
        label = f"{names[i]} {ap[i, 0]:.3f}" if per_class and i < len(names) else None
        ax.plot(px, py[:, i], linewidth=1, color="grey" if not per_class else None, label=label)
    if py.shape[1]:
        ax.plot(px, py.mean(1), linewidth=3, color="blue", label=f"all classes {ap[:, 0].mean():.3f} mAP@0.5")
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1), title="Precision-Recall Curve")
    ax.legend(bbox_to_anchor=(1.04, 1), loc="upper left")
    return _save(fig, path)


def plot_mc_curve(px: np.ndarray, py: np.ndarray, path: Path | str, names: Sequence[str] = (),
                  xlabel: str = "Confidence", ylabel: str = "Metric") -> Path:
    """A metric against confidence: py (nc, len(px)); the smoothed class mean in bold with its best point."""
    fig, ax = _figure()
    per_class = 0 < len(py) < MAX_LEGEND_CLASSES
    for i, y in enumerate(py):
        label = names[i] if per_class and i < len(names) else None
        ax.plot(px, y, linewidth=1, color="grey" if not per_class else None, label=label)
    if len(py):
        y = smooth(py.mean(0), 0.05)
        ax.plot(px, y, linewidth=3, color="blue", label=f"all classes {y.max():.2f} at {px[y.argmax()]:.3f}")
    ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1), title=f"{ylabel}-Confidence Curve")
    ax.legend(bbox_to_anchor=(1.04, 1), loc="upper left")
    return _save(fig, path)


def plot_confusion_matrix(matrix: np.ndarray, path: Path | str, names: dict | Sequence[str] = (),
                          normalize: bool = True) -> Path:
    """Heat map of a (nc+1, nc+1) matrix [predicted, true]; columns normalised to 1 when `normalize`."""
    nc = matrix.shape[0] - 1
    names = list(names.values()) if isinstance(names, dict) else list(names)
    shown = matrix / (matrix.sum(0, keepdims=True) + 1e-9) if normalize else matrix.copy()
    shown[shown < 0.005] = np.nan  # blank cells instead of zeros
    fig, ax = _figure((12, 9))
    image = ax.imshow(shown, cmap="Blues", vmin=0.0, interpolation="nearest")
    fig.colorbar(image, ax=ax)
    labelled = 0 < nc < 99 and len(names) == nc
    if labelled:
        ticks = names + ["background"]
        ax.set_xticks(range(nc + 1), ticks, rotation=90, fontsize=8 if nc < 30 else 5)
        ax.set_yticks(range(nc + 1), ticks, fontsize=8 if nc < 30 else 5)
    if nc < 30:
        for (i, j), v in np.ndenumerate(shown):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center", fontsize=7)
    ax.set(xlabel="True", ylabel="Predicted", title="Confusion Matrix")
    return _save(fig, path)
