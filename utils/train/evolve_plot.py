"""evolve.png: fitness against each hyperparameter of evolve.csv, one scatter per key, the best generation marked."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from utils.metrics import fitness
from utils.train.evolve import N_RESULTS, best_row, read_evolve_csv

COLS = 5


def _density(x: np.ndarray, y: np.ndarray, bins: int = 20) -> np.ndarray:
    """Per point, log of the number of points in its cell of a bins x bins grid (colour of crowded regions)."""
    h, xe, ye = np.histogram2d(x, y, bins=bins)
    ix = np.clip(np.digitize(x, xe) - 1, 0, h.shape[0] - 1)
    iy = np.clip(np.digitize(y, ye) - 1, 0, h.shape[1] - 1)
    return np.log(h[ix, iy])


def evolve_figure(csv_file: str | Path):
    """The matplotlib figure: panel i plots fitness against hyperparameter i, titled `key = best value`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys, x = read_evolve_csv(csv_file)
    if not len(x):
        raise ValueError(f"{csv_file}: no generations to plot")
    f, j = fitness(x), best_row(x)
    rows = math.ceil(len(keys) / COLS)
    fig = plt.figure(figsize=(2 * COLS, 2 * rows), tight_layout=True)
    for i, k in enumerate(keys):
        v = x[:, N_RESULTS + i]
        ax = fig.add_subplot(rows, COLS, i + 1)
        ax.scatter(v, f, c=_density(v, f), cmap="viridis", alpha=0.8, edgecolors="none")
        ax.plot(v[j], f[j], "k+", markersize=15)
        ax.set_title(f"{k} = {v[j]:.3g}", fontsize=9)
        if i % COLS:
            ax.set_yticks([])
    return fig


def plot_evolve(csv_file: str | Path) -> Path:
    """Save evolve.png next to evolve.csv."""
    import matplotlib.pyplot as plt

    fig = evolve_figure(csv_file)
    out = Path(csv_file).with_suffix(".png")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
