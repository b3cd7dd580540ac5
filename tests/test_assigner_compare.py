"""tools/assigner_compare.py: the assigners of two families on the same demo image, side by side."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("_tool_assigner_compare", REPO / "tools" / "assigner_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_assigners_side_by_side(tmp_path):
    out = _tool().main(["--data", "data/shapes.yaml", "--imgsz", "128", "--cfg", "atss-csp.yaml",
                                 "fcos-csp.yaml", "--project", str(tmp_path), "--name", "a"])
    im = cv2.imread(str(out / "assigners.jpg"))
    assert im.shape[1] == 2 * 128 and im.shape[0] > 128  # two panels and their title bars
    lines = (out / "assigners.txt").read_text().splitlines()
    n_targets = int(re.search(r": (\d+) targets", lines[0])[1])
    assert lines[1].startswith("atss-csp: ATSSAssigner:") and lines[2].startswith("fcos-csp: FCOS targets:")
    for line in lines[1:]:
        per_target = [int(x) for x in line.split("per target ")[1].split(";")[0].split(", ")]
        assert len(per_target) == n_targets and sum(per_target) == int(re.search(r": (\d+) positives", line)[1])
        assert sum(per_target) > 0
