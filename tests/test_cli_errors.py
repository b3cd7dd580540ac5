"""User mistakes end a script with one `script.py: error: ...` line and status 2; bugs keep their traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shared_data import REPO, shared_path
from utils.cli import (TRACEBACK_ENV, UserError, UserFileNotFoundError, UserKeyError, UserValueError, run_main,
                       show_tracebacks)

UNKNOWN_MODULE_YAML = ("nc: 2\nbackbone:\n  [[-1, 1, Conv, [16, 3, 2]], [-1, 1, Bogus, [32]]]\n"
                       "head:\n  [[-1, 1, Detect, [nc, 3]]]\n")


def run_scripts(commands: list[tuple[str, list[str], dict]], cwd: Path) -> list[subprocess.CompletedProcess]:
    """`python <repo>/<script> args` with extra environment `env` for each (script, args, env), all at once, in `cwd`
    (so nothing lands in the repository); YOLO_TRACEBACK is unset unless `env` sets it."""
    base = {k: v for k, v in os.environ.items() if k != TRACEBACK_ENV}
    procs = [subprocess.Popen([sys.executable, str(REPO / script), *args], cwd=cwd, env=base | env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for script, args, env in commands]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def assert_user_error(r: subprocess.CompletedProcess, script: str, *message: str) -> None:
    """Status 2, no traceback, stderr ends with one `<script name>: error: ...` message (which may go on over
    a few lines, e.g. the places a file was looked for) naming `message`."""
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    errors = [i for i, ln in enumerate(r.stderr.splitlines()) if ": error: " in ln]
    assert len(errors) == 1, r.stderr
    error = "\n".join(r.stderr.splitlines()[errors[0]:])
    assert error.startswith(f"{Path(script).name}: error: "), r.stderr
    for m in message:
        assert m in error, error


@pytest.fixture(scope="module")
def weights() -> str:
    return str(shared_path("weights", "yolov5n.pt"))


@pytest.fixture(scope="module")
def image() -> str:
    return str(shared_path("datasets", "coco128", "images", "train2017", "000000000009.jpg"))


# ---- the wrapper itself (in-process) ----

def _raise(e: BaseException):
    def main():
        raise e
    return main


def test_run_main_prints_user_error_and_exits_2(monkeypatch, capsys):
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["/somewhere/train.py", "--x"])
    with pytest.raises(SystemExit) as e:
        run_main(_raise(UserKeyError("d.yaml: key 'val' is missing")))
    assert e.value.code == 2
    assert capsys.readouterr().err == "train.py: error: d.yaml: key 'val' is missing\n"  # no KeyError quotes


def test_run_main_status_from_main():
    for result, code in ((None, 0), ({"onnx": "x"}, 0), (1, 1), (0, 0)):
        with pytest.raises(SystemExit) as e:
            run_main(lambda r=result: r)
        assert e.value.code == code


def test_run_main_lets_bugs_through(monkeypatch):
    """Built-in exceptions that are not UserErrors (bugs) propagate unchanged, traceback and all."""
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    for bug in (ValueError("bug"), FileNotFoundError("bug"), KeyError("bug"), ZeroDivisionError()):
        with pytest.raises(type(bug)) as e:
            run_main(_raise(bug))
        assert e.value is bug


def test_user_errors_are_their_builtin_types():
    assert issubclass(UserFileNotFoundError, FileNotFoundError) and issubclass(UserValueError, ValueError)
    assert issubclass(UserKeyError, KeyError) and all(issubclass(c, UserError) for c in
                                                     (UserFileNotFoundError, UserValueError, UserKeyError))
    from models.checkpoint import CheckpointError
    from models.darknet_cfg import DarknetCfgError
    from models.parse import ModelConfigError
    from utils.darknet_weights import DarknetWeightsError
    assert all(issubclass(c, UserValueError) for c in
               (CheckpointError, DarknetCfgError, ModelConfigError, DarknetWeightsError))


def test_traceback_switch(monkeypatch, capsys):
    for value, on in (("1", True), ("yes", True), ("0", False), ("", False)):
        monkeypatch.setenv(TRACEBACK_ENV, value)
        assert show_tracebacks() is on
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    with pytest.raises(SystemExit) as e:
        run_main(_raise(UserFileNotFoundError("weights not found: x.pt")))
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" in err and err.endswith("error: weights not found: x.pt\n")


def test_library_raises_user_errors(tmp_path):
    """The library's checks for the user's files raise UserErrors (and stay catchable as the built-ins)."""
    from models import load_model
    from models.yolo import Model
    from utils.data.data_yaml import load_data_yaml
    from utils.data.sources import source_kind

    with pytest.raises(UserFileNotFoundError, match="weights not found: .*nope.pt"):
        load_model(tmp_path / "nope.pt")
    with pytest.raises(UserFileNotFoundError, match="data YAML not found"):
        load_data_yaml(tmp_path / "nope.yaml")
    with pytest.raises(UserFileNotFoundError, match="model YAML not found"):
        Model(str(tmp_path / "nope.yaml"))
    (tmp_path / "bad.yaml").write_text(UNKNOWN_MODULE_YAML)
    with pytest.raises(UserValueError, match=r"row 1.*unknown module 'Bogus'"):
        Model(str(tmp_path / "bad.yaml"))
    with pytest.raises(UserFileNotFoundError, match="--source"):
        source_kind(str(tmp_path / "nope.jpg"))


# ---- through the scripts ----

@pytest.mark.slow
def test_scripts_report_user_errors(tmp_path, weights, image):
    """Missing weights, source, data YAML and model YAML, an unknown module in a row, bad flag values."""
    nope = str(tmp_path / "nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text(UNKNOWN_MODULE_YAML)
    cases = [  # script, args, what the message names
        ("detect.py", ["--weights", weights, "--source", nope + ".jpg", "--nosave"], ["--source", "nope.jpg"]),
        ("val.py", ["--weights", weights, "--data", nope + ".yaml"], ["data YAML not found", "nope.yaml"]),
        ("train.py", ["--cfg", nope + ".yaml", "--data", nope + "_data.yaml", "--epochs", "1"], ["not found"]),
        ("train.py", ["--cfg", "yolov5n.yaml", "--epochs", "0"], ["--epochs"]),
        ("export.py", ["--weights", nope + ".pt"], ["weights not found", "nope.pt"]),
        ("models/yolo.py", ["--cfg", str(bad)], ["bad.yaml", "row 1", "unknown module 'Bogus'"]),
        ("tools/profile_layers.py", ["--cfg", nope + ".yaml"], ["model YAML not found"]),
    ]
    results = run_scripts([(script, args, {}) for script, args, _ in cases], cwd=tmp_path)
    for (script, _, message), r in zip(cases, results):
        assert_user_error(r, script, *message)


@pytest.mark.slow
def test_traceback_switch_and_real_bugs_through_a_script(tmp_path, image):
    """YOLO_TRACEBACK=1 adds the traceback to a user error; a bug (here a patched-in ValueError) keeps it without."""
    bug = tmp_path / "bug.py"  # runs detect.py as __main__ with a library function that fails like a bug would
    bug.write_text(f"import runpy, sys\nsys.path.insert(0, {str(REPO)!r})\nimport models.backends\n\n"
                   "def load_backend(*args, **kwargs):\n    raise ValueError('simulated bug')\n\n"
                   "models.backends.load_backend = load_backend\n"
                   f"sys.argv = [{str(REPO / 'detect.py')!r}, *sys.argv[1:]]\n"
                   "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    args = ["--weights", str(tmp_path / "nope.pt"), "--source", image, "--nosave"]
    switched, buggy = run_scripts([("detect.py", args, {TRACEBACK_ENV: "1"}), (str(bug), args, {})], cwd=tmp_path)
    assert switched.returncode == 2 and "Traceback" in switched.stderr and "UserFileNotFoundError" in switched.stderr
    assert switched.stderr.strip().splitlines()[-1].startswith("detect.py: error: weights not found")
    assert buggy.returncode == 1 and "Traceback" in buggy.stderr, buggy.stderr
    assert buggy.stderr.strip().splitlines()[-1] == "ValueError: simulated bug"
    assert "error: simulated bug" not in buggy.stderr
