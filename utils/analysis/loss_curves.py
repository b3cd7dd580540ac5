"""Training curves from YOLOv5-style `results.csv` files, one or several runs side by side."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.analysis.common import save_figure
from utils.train.loggers import read_results_csv

# (column, panel title) in YOLOv5's results.png order
PANELS = (("train/box_loss", "train box loss"), ("train/obj_loss", "train obj loss"),
          ("train/cls_loss", "train cls loss"), ("metrics/precision", "precision"), ("metrics/recall", "recall"),
          ("val/box_loss", "val box loss"), ("val/obj_loss", "val obj loss"), ("val/cls_loss", "val cls loss"),
          ("metrics/mAP_0.5", "mAP@0.5"), ("metrics/mAP_0.5:0.95", "mAP@0.5:0.95"))
LR_COLUMNS = ("x/lr0", "x/lr1", "x/lr2")


@dataclass(frozen=True)
class Run:
    """One results.csv: its label (the run folder's name) and its columns as float arrays."""

    path: Path
    label: str
    columns: dict[str, np.ndarray]

    def fitness(self) -> np.ndarray:
        """YOLOv5's fitness per epoch: 0.1 mAP@0.5 + 0.9 mAP@0.5:0.95."""
        return 0.1 * self.columns["metrics/mAP_0.5"] + 0.9 * self.columns["metrics/mAP_0.5:0.95"]


def read_results(path: str | Path) -> Run:
    """Parse results.csv (see `read_results_csv`) and check it has the columns the panels need."""
    path = Path(path)
    header, rows = read_results_csv(path)
    missing = [c for c in ("epoch",) + tuple(c for c, _ in PANELS) if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {header}")
    data = np.array(rows, dtype=np.float64).reshape(len(rows), len(header))
    label = path.parent.name or path.stem
    return Run(path, label, {h: data[:, k] for k, h in enumerate(header)})


def summary(runs: list[Run]) -> str:
    """Per run: epochs, best epoch by fitness with its metrics, and the last epoch's losses."""
    lines = []
    for run in runs:
        c = run.columns
        if not len(c["epoch"]):
            lines.append(f"{run.label}: no epochs in {run.path}")
            continue
        b = int(np.argmax(run.fitness()))
        last = -1
        lines.append(f"{run.label} ({run.path}): {len(c['epoch'])} epochs; best epoch {int(c['epoch'][b])}: "
                     f"P {c['metrics/precision'][b]:.4f} R {c['metrics/recall'][b]:.4f} "
                     f"mAP@0.5 {c['metrics/mAP_0.5'][b]:.4f} mAP@0.5:0.95 {c['metrics/mAP_0.5:0.95'][b]:.4f}; "
                     f"last train box/obj/cls {c['train/box_loss'][last]:.4f}/{c['train/obj_loss'][last]:.4f}/"
                     f"{c['train/cls_loss'][last]:.4f}, val {c['val/box_loss'][last]:.4f}/"
                     f"{c['val/obj_loss'][last]:.4f}/{c['val/cls_loss'][last]:.4f}")
    return "\n".join(lines)


def plot_runs(runs: list[Run], fname: str | Path) -> Path:
    """2 x 5 panels (losses and metrics per epoch) plus a learning-rate panel when present; one line per run."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_lr = any(c in run.columns for run in runs for c in LR_COLUMNS)
    fig, axes = plt.subplots(2, 6 if has_lr else 5, figsize=(20 if has_lr else 16, 6), squeeze=False)
    panels = list(PANELS[:5]) + ([("lr", "learning rate")] if has_lr else []) + list(PANELS[5:])
    for ax, (col, title) in zip(axes.ravel(), panels):
        for run in runs:
            x = run.columns["epoch"]
            if col == "lr":
                for lr in (c for c in LR_COLUMNS if c in run.columns):
                    ax.plot(x, run.columns[lr], marker=".", label=f"{run.label} {lr[2:]}")
            else:
                ax.plot(x, run.columns[col], marker=".", label=run.label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
    axes[0, 0].legend(fontsize=8)
    if has_lr:
        axes[0, 5].legend(fontsize=6)
        axes[1, 5].axis("off")
    return save_figure(fig, fname)
