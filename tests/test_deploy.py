"""The deployment cases (tests/deploy_cases.py), each in a pytest process of its own.

A native runtime that crashes or hangs takes the whole pytest process with it; in a process of its own a case fails
alone, with its output (and, when it hangs, every thread's stack). Two such bugs were found so, both now fixed and
tested: OpenVINO Cores freed out of order left a freed signal stack, and the next signal was a SIGSEGV
(models/backend_openvino.shared_core); a forked DataLoader worker collected an ONNX Runtime session it had inherited
and hung in its destructor (utils/data/worker_fork.py). Every case also passes with the others in one process:
`DEPLOY_EXPORTS=<folder of build_exports> python -m pytest tests/deploy_cases.py`."""
from __future__ import annotations

import os
import subprocess
import sys
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


ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
CASE_TIMEOUT_S = 900  # every case takes under 30 s on a 2-core CPU
STACK_DUMP_S = 600  # a case still running then prints every thread's stack (pytest's faulthandler_timeout)


def _text(stream: bytes | str | None) -> str:
    """A TimeoutExpired stream (bytes even under text=True) as text."""
    return stream.decode(errors="replace") if isinstance(stream, bytes) else (stream or "")


@pytest.fixture(scope="module")
def exports_folder(tmp_path_factory) -> Path:
    """The cases' exports, built once (in a process of its own too) instead of once per case."""
    root = tmp_path_factory.mktemp("deploy")
    code = f"from pathlib import Path; from tests.deploy_cases import build_exports; build_exports(Path({str(root)!r}))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=900, env=ENV)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return root


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_deploy_case_in_its_own_process(case: str, exports_folder: Path) -> None:
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
           "-o", f"faulthandler_timeout={STACK_DUMP_S}", f"{ROOT / 'tests' / 'deploy_cases.py'}::{case}"]
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=CASE_TIMEOUT_S,
                             env={**ENV, "DEPLOY_EXPORTS": str(exports_folder)})
    except subprocess.TimeoutExpired as e:  # a hang: the child's faulthandler dump says where it stood
        pytest.fail(f"{case} ran past {CASE_TIMEOUT_S} s; its output:\n{_text(e.stdout)}\n{_text(e.stderr)[-8000:]}")
    tail = (out.stdout + out.stderr)[-4000:]
    assert out.returncode == 0, tail
    assert "1 passed" in tail and "skipped" not in tail, tail
