"""The deployment cases (tests/deploy_cases.py), run together in one pytest process of their own.

A native runtime that crashes or hangs takes the whole pytest process with it; in a child process it fails only the
cases here, with the child's output (and, when it hangs, every thread's stack). Each case is still reported on its
own, from the child's JUnit XML. Two such bugs were found through this harness, both now fixed and tested: OpenVINO
Cores freed out of order left a freed signal stack, and the next signal was a SIGSEGV
(models/backend_openvino.shared_core); a forked DataLoader worker collected an ONNX Runtime session it had inherited
and hung in its destructor (utils/data/worker_fork.py). Until those fixes each case ran in a process of its own; one
process for all saves some 50 s of start-ups. By hand: `python -m pytest tests/deploy_cases.py` (with
DEPLOY_EXPORTS=<a folder build_exports filled> it reuses those exports)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed (requirements-dev.txt)")
pytest.importorskip("openvino", reason="OpenVINO is not installed (requirements-deploy.txt)")


CASES = ("test_exports_read_their_metadata", "test_detections_on_dog_equal_pytorch",
         "test_val_map_equals_pytorch_on_coco128", "test_int8_openvino_map_drop", "test_openvino_bf16",
         "test_openvino_compiles_recurring_shapes",
         "test_openvino_backends_dropped_in_any_order_keep_signals_working",
         "test_backend_flag_picks_provider_and_device", "test_bad_exports_name_the_file",
         "test_simplified_onnx_verifies", "test_export_option_errors")


ENV = {k: v for k, v in os.environ.items() if k != "DEPLOY_EXPORTS"} | {"PYTHONPATH": str(ROOT)}
RUN_TIMEOUT_S = 1200  # the exports and all cases take 40-90 s on a 2-core CPU
STACK_DUMP_S = 600  # a case still running then prints every thread's stack (pytest's faulthandler_timeout)


def _text(stream: bytes | str | None) -> str:
    """A TimeoutExpired stream (bytes even under text=True) as text."""
    return stream.decode(errors="replace") if isinstance(stream, bytes) else (stream or "")


@dataclass
class ChildRun:
    """The child pytest's outcome per case ('passed', 'failed', 'error', 'skipped' with its text), and its output."""
    outcomes: dict[str, tuple[str, str]]
    output: str


def _outcomes(junit_xml: Path) -> dict[str, tuple[str, str]]:
    """Case name -> (outcome, message and text) from a pytest JUnit XML file."""
    import xml.etree.ElementTree as ET

    found = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        problems = [e for e in case if e.tag in ("failure", "error", "skipped")]
        outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[problems[0].tag] if problems else "passed"
        text = "\n".join(f"{e.get('message', '')}\n{e.text or ''}" for e in problems)
        found[case.get("name")] = (outcome, text)
    return found


@pytest.fixture(scope="module")
def child_run(tmp_path_factory) -> ChildRun:
    """Every case of tests/deploy_cases.py in one child pytest process (its module fixture builds the exports)."""
    junit = tmp_path_factory.mktemp("deploy_results") / "cases.xml"
    cmd = [sys.executable, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider", "-o",
           f"faulthandler_timeout={STACK_DUMP_S}", f"--junitxml={junit}", str(ROOT / "tests" / "deploy_cases.py")]
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=ENV)
    except subprocess.TimeoutExpired as e:  # a hang: the child's faulthandler dump says where it stood
        stdout = _text(e.stdout)
        return ChildRun(_reported(stdout), f"output, stopped after {RUN_TIMEOUT_S} s:\n{stdout[-4000:]}\n"
                                           f"{_text(e.stderr)[-8000:]}")
    output = f"output (exit status {out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    # no XML: the child died (a signal)
    return ChildRun(_outcomes(junit) if junit.is_file() else _reported(out.stdout), output)


def _reported(stdout: str) -> dict[str, tuple[str, str]]:
    """The outcomes a `pytest -v` child printed before it died or hung (their texts are in its output)."""
    done = re.findall(r"deploy_cases\.py::(\w+) (PASSED|FAILED|SKIPPED|ERROR)", stdout)
    return {name: (outcome.lower(), "see the child pytest's output") for name, outcome in done}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_deploy_case(case: str, child_run: ChildRun) -> None:
    if case not in child_run.outcomes:
        pytest.fail(f"{case} did not finish; the child pytest's {child_run.output}", pytrace=False)
    outcome, text = child_run.outcomes[case]
    if outcome == "skipped":  # reported as the child reported it (CI prints every skip's reason)
        pytest.skip(text.strip()[:500])
    if outcome != "passed":
        pytest.fail(f"{case} {outcome}:\n{text[-6000:]}", pytrace=False)


@pytest.mark.slow
def test_every_case_is_listed(child_run: ChildRun) -> None:
    """A case added to tests/deploy_cases.py is reported here too."""
    if not child_run.outcomes:
        pytest.fail(f"the child pytest reported no case; its {child_run.output}", pytrace=False)
    assert sorted(child_run.outcomes) == sorted(CASES)
