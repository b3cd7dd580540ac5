"""The one door to ../shared (real datasets, official weights, reference outputs).

Tests call `shared_path(...)`; when the file is absent the test is skipped with a reason
naming the path, so a machine without ../shared still runs everything else.
Set YOLO_SHARED to point somewhere else; by default the nearest `shared/` beside the repo
or one of its parent folders is used.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_shared() -> Path:
    """$YOLO_SHARED, else the nearest `shared/` folder beside the repo or one of its parents (worktrees)."""
    if os.environ.get("YOLO_SHARED"):
        return Path(os.environ["YOLO_SHARED"])
    for parent in REPO.parents:
        if (parent / "shared").is_dir():
            return parent / "shared"
    return REPO.parent / "shared"


SHARED = _find_shared()


def shared_path(*parts: str) -> Path:
    """Return ../shared/<parts>, or skip the calling test when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared reference data not available: {path} (set YOLO_SHARED)")
    return path
