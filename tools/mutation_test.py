"""Mutation testing of one module with mutmut 3, against the tests that cover it (a local tool, not part of CI).

  pip install -r requirements-mutation.txt
  python tools/mutation_test.py utils/nms.py                 # mutate utils/nms.py, run the tests mapped to it
  python tools/mutation_test.py utils/loss.py --json runs/mutation/loss.json --workers 2
  python tools/mutation_test.py --list                       # the module -> test files map
  python tools/mutation_test.py utils/boxes.py --tests tests/test_boxes.py   # your own selection

The repository's files (git's tracked and untracked-but-not-ignored ones) are copied to a temporary folder, so
the working tree is never mutated; mutmut mutates the module there, records which tests reach each function and
runs only those for each mutant (in-process, forked from a warm server: the tests' subprocesses do not count, so
the slow subprocess tests are left out unless --slow). Prints the score (killed / all mutants; a mutant that no
test reaches counts as survived) and the diff of every survivor; --json writes both.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The modules whose numbers matter, and the test files that check them directly. Kept to the direct unit tests on
# purpose: every mutant reruns the tests that reach its function, and the end-to-end files (val, training runs)
# reach nearly everything, which makes a module take hours instead of minutes (widen with --tests when needed).
MODULE_TESTS: dict[str, tuple[str, ...]] = {
    "utils/loss.py": ("tests/test_loss.py", "tests/test_darknet_train.py"),  # the latter: Darknet score_logits
    "utils/nms.py": ("tests/test_nms.py",),
    "utils/nms_numpy.py": ("tests/test_nms_numpy.py",),
    "utils/metrics.py": ("tests/test_metrics.py",),
    "utils/boxes.py": ("tests/test_boxes.py",),
    "utils/data/mosaic.py": ("tests/test_augment.py",),
    "utils/data/augment.py": ("tests/test_augment.py",),
    "utils/train/loop.py": ("tests/test_train_units.py", "tests/test_train_flags.py"),
    "utils/train/state.py": ("tests/test_train_units.py",),
}
MUTMUT_STATUS = re.compile(r"^\s+(\S+): (.+)$")
KILLED = {"killed", "timeout", "caught by type check"}


def kill_test_files(module: str) -> tuple[str, ...]:
    """tests/test_mutation_kills_<stem>.py when it exists: the tests written against this module's survivors."""
    stem = Path(module).stem
    path = REPO / "tests" / f"test_mutation_kills_{stem}.py"
    return (f"tests/{path.name}",) if path.exists() else ()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("module", nargs="?", help="module to mutate, e.g. utils/nms.py (see --list)")
    p.add_argument("--tests", nargs="+", help="test files or node ids to run instead of the module's mapped ones")
    p.add_argument("--slow", action="store_true", help="also run tests marked slow (slower; subprocesses still "
                                                       "cannot kill mutants)")
    p.add_argument("--workers", type=int, default=1, help="mutants tested in parallel (each one forked process)")
    p.add_argument("--sample", type=int, default=0, help="test only this many mutants drawn at random (0: all); the "
                                                         "score is then an estimate, printed with its 95%% interval")
    p.add_argument("--seed", type=int, default=0, help="random seed of --sample")
    p.add_argument("--mutants", nargs="+", help="test only these mutants (names as printed, e.g. earlier survivors)")
    p.add_argument("--json", type=Path, help="write the score, every mutant's status and the survivors' diffs here")
    p.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary folder, removed)")
    p.add_argument("--list", action="store_true", help="print the module -> test files map and exit")
    return p.parse_args(argv)


def repo_files() -> list[str]:
    """Files git knows about or would add (ignored ones such as datasets/ and runs/ stay out)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                         capture_output=True).stdout.decode()
    return [f for f in out.split("\0") if f and (REPO / f).is_file()]


def copy_repo(dst: Path) -> None:
    """Copy the repository's files into dst (no .git, no mutants/ of earlier runs)."""
    for rel in repo_files():
        if rel.startswith("mutants/"):
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def mutmut_config(module: str, tests: list[str], slow: bool, top_level: list[str]) -> str:
    """The [tool.mutmut] table: mutate only `module`, select `tests`, copy the rest of the repository along."""
    package = module.split("/")[0]
    also_copy = [name for name in top_level if name not in (package, "tests", "pyproject.toml")]
    cli_args = ["-p", "no:cacheprovider"] + ([] if slow else ["-m", "not slow"])
    return "\n".join([
        "", "[tool.mutmut]",
        f"source_paths = {toml_list([package])}",
        f"only_mutate = {toml_list([module])}",
        f"also_copy = {toml_list(also_copy)}",
        f"pytest_add_cli_args = {toml_list(cli_args)}",
        f"pytest_add_cli_args_test_selection = {toml_list(tests)}",
        'process_isolation = "forkserver"',
        "timeout_multiplier = 60.0",  # wall-clock limit per mutant; 15 (the default) is too tight on a loaded CPU
        "use_git_change_detection = false",
        "",
    ])


def shared_dir() -> Path:
    """The reference-data folder the tests would use (tests/shared_data.py owns the search)."""
    sys.path.insert(0, str(REPO))
    from tests.shared_data import SHARED  # noqa: E402 (the one owner of where ../shared is)
    return SHARED.resolve()


def run_mutmut(work: Path, workers: int, names: list[str] = ()) -> None:
    """mutmut run in `work` (all mutants, or only `names`), its progress line streaming to the terminal."""
    # one intra-op thread: mutmut limits each mutant by CPU seconds, which spinning OpenMP threads inflate
    env = dict(os.environ, YOLO_SHARED=str(shared_dir()), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1")
    env.pop("CI", None)  # a reference file missing here should skip, not stop the run
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(workers), *names]
    proc = subprocess.run(cmd, cwd=work, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"mutmut run failed (exit {proc.returncode}) in {work}; rerun with --keep to inspect it")


def mutant_statuses(work: Path) -> dict[str, str]:
    """Every mutant's status from `mutmut results --all true`."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work, check=True,
                         capture_output=True, text=True).stdout
    return {m.group(1): m.group(2).strip() for m in map(MUTMUT_STATUS.match, out.splitlines()) if m}


def mutant_diff(work: Path, name: str) -> str:
    out = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=work, check=True,
                         capture_output=True, text=True).stdout
    return "\n".join(line for line in out.splitlines() if not line.startswith("# "))


def first_mutants(module: str) -> str:
    """A mutmut name pattern for the first mutant of each function of the module (running them generates all)."""
    return f"{module[:-3].replace('/', '.')}.*__mutmut_1"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion k/n, in percent."""
    if n == 0:
        return 0.0, 100.0
    p, d = k / n, 1 + z * z / n
    mid, half = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return round(100 * max(0.0, mid - half), 1), round(100 * min(1.0, mid + half), 1)


def summarise(module: str, tests: list[str], statuses: dict[str, str], work: Path, generated: int) -> dict:
    """Score and survivors (with diffs)."""
    killed = sum(s in KILLED for s in statuses.values())
    survivors = {k: s for k, s in statuses.items() if s not in KILLED}
    total = len(statuses)
    return {
        "module": module, "tests": tests, "generated": generated, "total": total, "killed": killed,
        "score": round(100.0 * killed / total, 1) if total else 0.0, "interval95": wilson(killed, total),
        "counts": {s: sum(v == s for v in statuses.values()) for s in sorted(set(statuses.values()))},
        "survivors": [{"name": k, "status": s, "diff": mutant_diff(work, k)} for k, s in sorted(survivors.items())],
    }


def mutate(module: str, tests: list[str], slow: bool, workers: int, work: Path, sample: int, seed: int,
           only: list[str] | None = None) -> dict:
    """Copy the repository into `work`, run mutmut on `module` against `tests` (all, a sample, or `only`)."""
    if (work / "mutants").exists():
        shutil.rmtree(work / "mutants")
    copy_repo(work)
    top_level = sorted({Path(f).parts[0] for f in repo_files()})
    with open(work / "pyproject.toml", "a") as f:
        f.write(mutmut_config(module, tests, slow, top_level))
    if only:
        run_mutmut(work, workers, only)
        statuses = mutant_statuses(work)
        return summarise(module, tests, {n: statuses[n] for n in only}, work, len(statuses))
    if not sample:
        run_mutmut(work, workers)
        statuses = mutant_statuses(work)
        return summarise(module, tests, statuses, work, len(statuses))
    run_mutmut(work, workers, [first_mutants(module)])  # generates every mutant and the test map, tests a few
    done = mutant_statuses(work)
    names = sorted(done)
    chosen = sorted(random.Random(seed).sample(names, min(sample, len(names))))
    todo = [n for n in chosen if done[n] == "not checked"]
    if todo:
        run_mutmut(work, workers, todo)
    statuses = mutant_statuses(work)
    return summarise(module, tests, {n: statuses[n] for n in chosen}, work, len(names))


def main(argv: list[str] | None = None) -> dict | None:
    opt = parse_args(argv)
    if opt.list or not opt.module:
        for module, tests in MODULE_TESTS.items():
            print(f"{module}: {' '.join(tests + kill_test_files(module))}")
        return None
    module = Path(opt.module).as_posix()
    if not (REPO / module).is_file():
        raise SystemExit(f"no such module: {REPO / module}")
    if opt.tests:
        tests = list(opt.tests)
    elif module in MODULE_TESTS:
        tests = list(MODULE_TESTS[module] + kill_test_files(module))
    else:
        raise SystemExit(f"{module} has no test files mapped in MODULE_TESTS; pass --tests")
    missing = [t for t in tests if not (REPO / t.split("::")[0]).exists()]
    if missing:
        raise SystemExit(f"test files not found: {', '.join(missing)}")
    work = opt.keep.resolve() if opt.keep else Path(tempfile.mkdtemp(prefix="mutation_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = mutate(module, tests, opt.slow, opt.workers, work, opt.sample, opt.seed, opt.mutants)
    finally:
        if not opt.keep:
            shutil.rmtree(work, ignore_errors=True)
    for s in result["survivors"]:
        print(f"\n--- {s['name']} ({s['status']})\n{s['diff']}")
    lo, hi = result["interval95"]
    print(f"\n{module}: {result['killed']}/{result['total']} mutants killed ({result['score']}%, 95% interval "
          f"{lo}-{hi}%) of {result['generated']} generated; {result['counts']}; tests: {' '.join(tests)}")
    if opt.json:
        opt.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = opt.json.with_suffix(opt.json.suffix + ".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(opt.json)
    return result


if __name__ == "__main__":
    main()
