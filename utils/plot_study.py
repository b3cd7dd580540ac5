"""val.py --task study: study_<data>_<weights>.txt rows (YOLOv5's 10 columns, one row per image size) and study.png."""
from __future__ import annotations

from pathlib import Path

import numpy as np

STUDY_COLUMNS = ("P", "R", "mAP50", "mAP50-95", "box_loss", "obj_loss", "cls_loss",
                 "preprocess_ms", "inference_ms", "nms_ms")
PLOTTED = (0, 1, 2, 3, 7, 8, 9)


def write_study(path: Path, rows: list[list[float]]) -> Path:
    """One row per image size, YOLOv5's np.savetxt format ('%10.4g', space separated, no header)."""
    np.savetxt(path, np.asarray(rows, dtype=float).reshape(len(rows), len(STUDY_COLUMNS)), fmt="%10.4g")
    return path


def read_study(path: Path) -> np.ndarray:
    """(sizes, 10) array of a study file; an error names the file when a row has the wrong width."""
    x = np.loadtxt(path, ndmin=2)
    if x.shape[1] != len(STUDY_COLUMNS):
        raise ValueError(f"{path}: expected {len(STUDY_COLUMNS)} columns {STUDY_COLUMNS}, got {x.shape[1]}")
    return x


def plot_study(files: list[Path], sizes: list[int], out: Path) -> Path:
    """Each metric and time against the image size, one line per weights, plus mAP50-95 against inference time."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 4, figsize=(12, 6), tight_layout=True)
    ax = ax.ravel()
    for f in files:
        y = read_study(f)
        label = Path(f).stem.replace("study_", "")
        for a, j in zip(ax, PLOTTED):
            a.plot(sizes[:len(y)], y[:, j], ".-", linewidth=2, markersize=8, label=label)
            a.set_title(STUDY_COLUMNS[j])
        ax[7].plot(y[:, 8], y[:, 3], ".-", linewidth=2, markersize=8, label=label)
    ax[7].set_xlabel("inference (ms/image)")
    ax[7].set_ylabel("mAP50-95")
    ax[7].legend(fontsize=7)
    for a in ax[:7]:
        a.set_xlabel("image size (px)")
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out
