"""Label file verification: rows of `class cx cy w h`, normalised, positive size, class < nc."""
from __future__ import annotations

import os

import numpy as np


def _parse_rows(lines: list[str], path: str) -> np.ndarray:
    rows = [ln.split() for ln in lines if ln.strip()]
    for i, r in enumerate(rows, 1):
        if len(r) != 5:
            raise ValueError(f"row {i} has {len(r)} columns, expected 5 (class cx cy w h)")
    try:
        return np.array(rows, dtype=np.float32).reshape(-1, 5)
    except ValueError as e:
        raise ValueError(f"non-numeric value ({e})") from e


def _check_values(lb: np.ndarray, nc: int | None) -> None:
    bad = lambda mask: int(np.nonzero(mask)[0][0]) + 1  # noqa: E731 (1-based first bad row)
    if (lb[:, 0] < 0).any() or (lb[:, 0] != np.round(lb[:, 0])).any():
        raise ValueError(f"row {bad((lb[:, 0] < 0) | (lb[:, 0] != np.round(lb[:, 0])))}: class id must be a "
                         "non-negative integer")
    if nc is not None and (lb[:, 0] >= nc).any():
        r = bad(lb[:, 0] >= nc)
        raise ValueError(f"row {r}: class id {int(lb[r - 1, 0])} >= nc {nc}")
    if (lb[:, 3:5] <= 0).any():
        raise ValueError(f"row {bad((lb[:, 3:5] <= 0).any(1))}: width and height must be positive")
    out = (lb[:, 1:] < 0) | (lb[:, 1:] > 1)
    if out.any():
        r = bad(out.any(1))
        got = [round(float(v), 6) for v in lb[r - 1, 1:]]
        raise ValueError(f"row {r}: coordinates must be normalised to [0, 1], got {got}")


def verify_label(path: str, nc: int | None = None) -> tuple[np.ndarray, str, str]:
    """Read and check one label file; returns (labels (n,5) float32, status, warning).

    status is 'found', 'missing' (no file: background image) or 'empty'. Duplicate rows are dropped
    with a warning. Raises ValueError naming the row and the reason on any invalid content.
    """
    if not os.path.isfile(path):
        return np.zeros((0, 5), np.float32), "missing", ""
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            lines = f.read().splitlines()
        except UnicodeDecodeError as e:
            raise ValueError(f"not a text file ({e.reason})") from e
    lb = _parse_rows(lines, path)
    if not len(lb):
        return lb, "empty", ""
    _check_values(lb, nc)
    _, first = np.unique(lb, axis=0, return_index=True)
    msg = ""
    if len(first) < len(lb):
        msg = f"{len(lb) - len(first)} duplicate row(s) removed"
        lb = lb[np.sort(first)]
    return lb, "found", msg
