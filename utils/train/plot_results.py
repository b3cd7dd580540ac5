"""results.png: one panel per results.csv column against the epoch."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from utils.train.loggers import read_results_csv


def plot_results(csv_file: str | Path, fname: str | Path | None = None) -> Path:
    """Plot every metric/loss column of results.csv (2 x 5 panels like YOLOv5, lr columns skipped)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols, rows = read_results_csv(csv_file)
    data = np.array(rows, dtype=float).reshape(-1, len(cols))
    order = [1, 2, 3, 4, 5, 8, 9, 10, 6, 7]  # train losses, P, R | val losses, mAP50, mAP50-95
    fig, ax = plt.subplots(2, 5, figsize=(12, 6), tight_layout=True)
    for a, j in zip(ax.ravel(), order):
        if j >= len(cols):
            continue
        a.plot(data[:, 0], data[:, j], marker=".", linewidth=2, markersize=8)
        a.set_title(cols[j], fontsize=12)
    fname = Path(fname) if fname else Path(csv_file).with_name("results.png")
    fig.savefig(fname, dpi=200)
    plt.close(fig)
    return fname
