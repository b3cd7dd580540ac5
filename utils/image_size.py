"""One reading of an --imgsz value for every script: an int or a list of one (square) or two (h, w) sizes."""
from __future__ import annotations

from typing import Sequence

from utils.cli import UserValueError


def as_hw(imgsz: int | Sequence[int]) -> tuple[int, int]:
    """(h, w) of an --imgsz value: 640 or [640] -> (640, 640); [480, 640] -> (480, 640)."""
    sizes = [int(s) for s in imgsz] if isinstance(imgsz, (list, tuple)) else [int(imgsz)]
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise UserValueError(f"--imgsz takes one size or two (h w), got {list(sizes)}")
    return (sizes[0], sizes[0]) if len(sizes) == 1 else (sizes[0], sizes[1])
