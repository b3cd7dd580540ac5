"""The one door to ../shared (real datasets, official weights, reference outputs).

Tests call `shared_path(...)`; when the file is absent the test is skipped with a reason
naming the path, so a machine without ../shared still runs everything else.
Set YOLO_SHARED to point somewhere else.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("YOLO_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Return ../shared/<parts>, or skip the calling test when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared reference data not available: {path} (set YOLO_SHARED)")
    return path
