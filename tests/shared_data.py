"""The one door to ../shared (real datasets, official weights, reference outputs).

Tests call `shared_path(...)`; when the file is absent the test is skipped with a reason naming the
path, so a machine without ../shared still runs everything else. Under CI (`CI=true`, as CI services
set it) a missing file is a failure instead: CI must not stay green without the reference data.
Set YOLO_SHARED to point somewhere else; by default the nearest `shared/` beside the repo or one of
its parent folders is used.
"""
from __future__ import annotations

import os
from pathlib import Path

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


def under_ci() -> bool:
    """True when the environment says this is a CI run (CI=true/1/yes, any case)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def shared_path(*parts: str) -> Path:
    """Return ../shared/<parts>; when it is missing, skip the calling test (fail it under CI)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        import pytest  # here, not at the top: bench/ scripts find ../shared through SHARED in the official code's venv

        what = "shared folder" if not SHARED.is_dir() else "shared reference file"
        reason = f"{what} missing: {path} (set YOLO_SHARED to the folder holding the reference data)"
        if under_ci():
            pytest.fail(f"CI=true and the {reason}", pytrace=False)
        pytest.skip(f"{reason}; this is a failure under CI=true")
    return path
