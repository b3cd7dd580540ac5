"""Label file verification: rows of `class cx cy w h`, normalised, class < nc; rows that are not boxes dropped."""
from __future__ import annotations

import os

import numpy as np


def _parse_rows(lines: list[str], path: str = "") -> np.ndarray:
    rows = [ln.split() for ln in lines if ln.strip()]
    for i, r in enumerate(rows, 1):
        if len(r) != 5:
            raise ValueError(f"row {i} has {len(r)} columns, expected 5 (class cx cy w h)")
    try:
        lb = np.array(rows, dtype=np.float32).reshape(-1, 5)
    except ValueError as e:
        raise ValueError(f"non-numeric value ({e})") from e
    finite = np.isfinite(lb).all(1)
    if not finite.all():
        raise ValueError(f"row {int(np.nonzero(~finite)[0][0]) + 1}: non-finite value (nan or inf)")
    return lb


def _check_values(lb: np.ndarray, nc: int | None) -> None:
    bad = lambda mask: int(np.nonzero(mask)[0][0]) + 1  # noqa: E731 (1-based first bad row)
    if (lb[:, 0] < 0).any() or (lb[:, 0] != np.round(lb[:, 0])).any():
        raise ValueError(f"row {bad((lb[:, 0] < 0) | (lb[:, 0] != np.round(lb[:, 0])))}: class id must be a "
                         "non-negative integer")
    if nc is not None and (lb[:, 0] >= nc).any():
        r = bad(lb[:, 0] >= nc)
        raise ValueError(f"row {r}: class id {int(lb[r - 1, 0])} >= nc {nc}")


def _check_coordinates(lb: np.ndarray, rows: np.ndarray) -> None:
    out = ((lb[:, 1:] < 0) | (lb[:, 1:] > 1)).any(1)
    if out.any():
        i = int(np.nonzero(out)[0][0])
        got = [round(float(v), 6) for v in lb[i, 1:]]
        raise ValueError(f"row {rows[i]}: coordinates must be normalised to [0, 1], got {got}")


def _row_text(row: np.ndarray) -> str:
    return f"class {int(row[0])}, " + " ".join(f"{v:.6g}" for v in row[1:])


def drop_bad_rows(lb: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows that cannot be a box removed: zero or negative width/height, repeats of an earlier row.

    Returns (kept rows, their 1-based row numbers, one message per dropped row)."""
    rows = np.arange(1, len(lb) + 1)
    msgs = [f"row {r} dropped, width {w:.6g} height {h:.6g} is not a box ({_row_text(lb[r - 1])})"
            for r, w, h in zip(rows, lb[:, 3], lb[:, 4]) if w <= 0 or h <= 0]
    keep = (lb[:, 3] > 0) & (lb[:, 4] > 0)
    lb, rows = lb[keep], rows[keep]
    _, first, inverse = np.unique(lb, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    dup = [i for i in range(len(lb)) if first[inverse[i]] != i]
    if dup:
        msgs.append(f"{len(dup)} duplicate row(s) removed ("
                    + ", ".join(f"row {rows[i]} repeats row {rows[first[inverse[i]]]}" for i in dup) + ")")
    keep = np.sort(first)
    return lb[keep], rows[keep], msgs


def verify_label(path: str, nc: int | None = None) -> tuple[np.ndarray, str, str, int]:
    """Read and check one label file; returns (labels (n,5) float32, status, warning, rows dropped).

    status is 'found', 'missing' (no file: background image) or 'empty'. Rows that are not boxes (width or
    height <= 0, duplicates) are dropped with a warning naming each; the other rows are kept. Raises ValueError
    naming the row and the reason when the file cannot be used: unparsable, class out of range, coordinates
    outside [0, 1].
    """
    if not os.path.isfile(path):
        return np.zeros((0, 5), np.float32), "missing", "", 0
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            lines = f.read().splitlines()
        except UnicodeDecodeError as e:
            raise ValueError(f"not a text file ({e.reason})") from e
    return check_label_lines(lines, nc)


def check_label_lines(lines: list[str], nc: int | None = None) -> tuple[np.ndarray, str, str, int]:
    """The checks of `verify_label` on a label file's lines (e.g. a `.txt` read from a tar shard)."""
    lb = _parse_rows(lines)
    if not len(lb):
        return lb, "empty", "", 0
    _check_values(lb, nc)
    kept, rows, msgs = drop_bad_rows(lb)
    _check_coordinates(kept, rows)
    return kept, "found", "; ".join(msgs), len(lb) - len(kept)
