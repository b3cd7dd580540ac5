"""tests/shared_data.py: a missing reference file skips locally and fails under CI=true."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests import shared_data
from tests.shared_data import shared_path


@pytest.fixture
def shared_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ../shared holding one reference file."""
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "case.json").write_text("{}")
    monkeypatch.setattr(shared_data, "SHARED", tmp_path)
    return tmp_path


def test_present_file_is_returned(shared_here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert shared_path("reference", "case.json") == shared_here / "reference" / "case.json"


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_missing_file_skips_locally(shared_here: Path, monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception) as info:
        shared_path("reference", "absent.pt")
    assert str(shared_here / "reference" / "absent.pt") in str(info.value)
    assert "shared reference file missing" in str(info.value)


@pytest.mark.parametrize("ci", ["true", "TRUE", "1", "yes"])
def test_missing_file_fails_under_ci(shared_here: Path, monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception) as info:
        shared_path("reference", "absent.pt")
    assert str(shared_here / "reference" / "absent.pt") in str(info.value)


def test_missing_shared_folder_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = tmp_path / "no-shared-here"
    monkeypatch.setattr(shared_data, "SHARED", gone)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="shared folder missing") as info:
        shared_path("weights", "yolov5n.pt")
    assert str(gone / "weights" / "yolov5n.pt") in str(info.value)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="shared folder missing"):
        shared_path("weights", "yolov5n.pt")


def test_yolo_shared_overrides_the_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YOLO_SHARED", str(tmp_path))
    assert shared_data._find_shared() == tmp_path
    monkeypatch.delenv("YOLO_SHARED")
    found = shared_data._find_shared()
    assert found.name == "shared" and shared_data.REPO.is_relative_to(found.parent)
