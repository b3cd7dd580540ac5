"""Training curves from YOLOv5-style `results.csv` files, one or several runs side by side."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.analysis.common import save_figure
from utils.train.loggers import read_results_csv

LR_COLUMNS = ("x/lr0", "x/lr1", "x/lr2")


def loss_names(header: list[str] | tuple[str, ...]) -> list[str]:
    """The loss items of a results.csv, from its train/<name>_loss columns (box/obj/cls, or box/cls/dfl)."""
    return [c[len("train/"):-len("_loss")] for c in header if c.startswith("train/") and c.endswith("_loss")]


def panels(header: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """(column, panel title) in YOLOv5's results.png order: train losses, P, R | val losses, mAP@0.5, mAP@0.5:0.95."""
    names = loss_names(header)
    return ([(f"train/{n}_loss", f"train {n} loss") for n in names]
            + [("metrics/precision", "precision"), ("metrics/recall", "recall")]
            + [(f"val/{n}_loss", f"val {n} loss") for n in names]
            + [("metrics/mAP_0.5", "mAP@0.5"), ("metrics/mAP_0.5:0.95", "mAP@0.5:0.95")])


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
    missing = [c for c in ("epoch",) + tuple(c for c, _ in panels(header)) if c not in header]
    if not loss_names(header):
        missing.append("train/<name>_loss")
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
        names = loss_names(list(c))
        train = "/".join(f"{c[f'train/{n}_loss'][-1]:.4f}" for n in names)
        val = "/".join(f"{c[f'val/{n}_loss'][-1]:.4f}" for n in names)
        lines.append(f"{run.label} ({run.path}): {len(c['epoch'])} epochs; best epoch {int(c['epoch'][b])}: "
                     f"P {c['metrics/precision'][b]:.4f} R {c['metrics/recall'][b]:.4f} "
                     f"mAP@0.5 {c['metrics/mAP_0.5'][b]:.4f} mAP@0.5:0.95 {c['metrics/mAP_0.5:0.95'][b]:.4f}; "
                     f"last train {'/'.join(names)} {train}, val {val}")
    return "\n".join(lines)


def plot_runs(runs: list[Run], fname: str | Path) -> Path:
    """2 x 5 panels (losses and metrics per epoch) plus a learning-rate panel when present; one line per run."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_lr = any(c in run.columns for run in runs for c in LR_COLUMNS)
    fig, axes = plt.subplots(2, 6 if has_lr else 5, figsize=(20 if has_lr else 16, 6), squeeze=False)
    cols = panels(list(runs[0].columns))
    half = len(cols) // 2
    cols = cols[:half] + ([("lr", "learning rate")] if has_lr else []) + cols[half:]
    for ax, (col, title) in zip(axes.ravel(), cols):
        for run in runs:
            x = run.columns["epoch"]
            if col == "lr":
                for lr in (c for c in LR_COLUMNS if c in run.columns):
                    ax.plot(x, run.columns[lr], marker=".", label=f"{run.label} {lr[2:]}")
            elif col in run.columns:  # runs of two families side by side share the metric panels
                ax.plot(x, run.columns[col], marker=".", label=run.label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
    axes[0, 0].legend(fontsize=8)
    if has_lr:
        axes[0, 5].legend(fontsize=6)
        axes[1, 5].axis("off")
    return save_figure(fig, fname)
