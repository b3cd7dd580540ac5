"""Run folders: runs/<task>/exp, exp2, exp3, ... (YOLOv5's naming)."""
from __future__ import annotations

import re
from pathlib import Path


def increment_path(path: str | Path, exist_ok: bool = False, sep: str = "", mkdir: bool = False) -> Path:
    """`path` if free (or `exist_ok`), else `path{sep}N` with N one more than the largest existing N (from 2)."""
    path = Path(path)
    if path.exists() and not exist_ok:
        stem, suffix = (path.with_suffix(""), path.suffix) if path.is_file() else (path, "")
        pattern = re.compile(rf"^{re.escape(stem.name)}{re.escape(sep)}(\d+)$")
        taken = [int(m.group(1)) for p in stem.parent.glob(f"{stem.name}{sep}*")
                 if (m := pattern.match(p.with_suffix("").name if suffix else p.name))]
        n = max([1, *taken]) + 1
        path = stem.parent / f"{stem.name}{sep}{n}{suffix}"
    if mkdir:
        path.mkdir(parents=True, exist_ok=True)
    return path
