"""YOLOv5's curve smoothing, shared by the metrics (best-F1 confidence) and the curve plots."""
from __future__ import annotations

import numpy as np


def smooth(y: np.ndarray, f: float = 0.05) -> np.ndarray:
    """Box filter of width round(2*f*len(y))//2 + 1, edges padded with the end values (YOLOv5's smoothing)."""
    nf = round(len(y) * f * 2) // 2 + 1
    half = np.ones(nf // 2)
    padded = np.concatenate((half * y[0], y, half * y[-1]))
    return np.convolve(padded, np.ones(nf) / nf, mode="valid")
