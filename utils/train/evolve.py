"""Hyperparameter evolution, YOLOv5 v7.0's rules as pure functions: parent selection, mutation, limits, evolve.csv.

A generation trains with one hyperparameter set and appends one row to evolve.csv: the 7 validation results
(P, R, mAP50, mAP50-95, then the three validation loss items named as the loss names them, `item_names`:
val/box_loss, val/obj_loss, val/cls_loss for YOLOv5's loss, val/box_loss, val/cls_loss, val/dfl_loss for the
anchor-free one) then every hyperparameter, in YOLOv5's column names and its '%20.5g' number format. The next set is a mutation of a parent drawn from the 5 fittest rows.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import yaml

from utils.cli import UserValueError
from utils.metrics import fitness
from utils.train.loggers import LOSS_NAMES, read_results_csv

# key: (mutation gain 0-1, lower limit, upper limit), as YOLOv5 v7.0's train.py `meta`
META: dict[str, tuple[float, float, float]] = {
    "lr0": (1, 1e-5, 1e-1),
    "lrf": (1, 0.01, 1.0),
    "momentum": (0.3, 0.6, 0.98),
    "weight_decay": (1, 0.0, 0.001),
    "warmup_epochs": (1, 0.0, 5.0),
    "warmup_momentum": (1, 0.0, 0.95),
    "warmup_bias_lr": (1, 0.0, 0.2),
    "box": (1, 0.02, 0.2),
    "cls": (1, 0.2, 4.0),
    "cls_pw": (1, 0.5, 2.0),
    "obj": (1, 0.2, 4.0),
    "obj_pw": (1, 0.5, 2.0),
    "iou_t": (0, 0.1, 0.7),
    "anchor_t": (1, 2.0, 8.0),
    "anchors": (2, 2.0, 10.0),
    "fl_gamma": (0, 0.0, 2.0),
    "hsv_h": (1, 0.0, 0.1),
    "hsv_s": (1, 0.0, 0.9),
    "hsv_v": (1, 0.0, 0.9),
    "degrees": (1, 0.0, 45.0),
    "translate": (1, 0.0, 0.9),
    "scale": (1, 0.0, 0.9),
    "shear": (1, 0.0, 10.0),
    "perspective": (0, 0.0, 0.001),
    "flipud": (1, 0.0, 1.0),
    "fliplr": (0, 0.0, 1.0),
    "mosaic": (1, 0.0, 1.0),
    "mixup": (1, 0.0, 1.0),
    "copy_paste": (1, 0.0, 1.0),
}
METRIC_KEYS = ("metrics/precision", "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95")
N_RESULTS = 7  # the 4 metrics and the 3 loss items every loss of this project reports


def result_keys(loss_names: tuple[str, ...] = LOSS_NAMES) -> tuple[str, ...]:
    """The result columns of evolve.csv for a loss whose three items are `loss_names`."""
    keys = (*METRIC_KEYS, *(f"val/{n}_loss" for n in loss_names))
    if len(keys) != N_RESULTS:
        raise ValueError(f"evolve.csv takes 3 loss items, got {list(loss_names)}")
    return keys


RESULT_KEYS = result_keys()  # YOLOv5's
MUTATION_PROB, SIGMA = 0.8, 0.2
TOP_N = 5
PARENTS = ("single", "weighted")


def evolvable_hyp(hyp: dict[str, float], autoanchor: bool) -> dict[str, float]:
    """The hyp set evolution works on: `anchors` added as 3 (per level) when absent, dropped without AutoAnchor."""
    out = dict(hyp)
    if autoanchor:
        out.setdefault("anchors", 3.0)
    else:
        out.pop("anchors", None)
    return out


def select_parent(x: np.ndarray, rng: np.random.Generator, method: str = "single", top: int = TOP_N) -> np.ndarray:
    """A parent row from the `top` fittest rows of evolve.csv values `x` (n, N_RESULTS + k), weighted by fitness.

    'single': one row drawn with probability ~ fitness - min + 1e-6; 'weighted': the fitness-weighted mean row."""
    if method not in PARENTS:
        raise ValueError(f"parent selection must be one of {PARENTS}, got {method!r}")
    x = np.asarray(x, dtype=float).reshape(len(x), -1)
    x = x[np.argsort(-fitness(x))][:top]
    w = fitness(x) - fitness(x).min() + 1e-6
    if method == "single" or len(x) == 1:
        return x[rng.choice(len(x), p=w / w.sum())]
    return (x * w[:, None]).sum(0) / w.sum()


def mutate(parent: dict[str, float], rng: np.random.Generator, meta: dict = META, prob: float = MUTATION_PROB,
           sigma: float = SIGMA) -> dict[str, float]:
    """Each value times a factor in [0.3, 3]: 1 + gain * N(0, 1) * U(0, 1) * sigma with probability `prob`.

    Redrawn until at least one factor differs from 1; keys without a gain in `meta` are kept as they are."""
    keys = list(parent)
    gains = np.array([meta[k][0] if k in meta else 0.0 for k in keys], dtype=float)
    if not gains.any():
        return dict(parent)
    v = np.ones(len(keys))
    while (v == 1).all():
        v = (gains * (rng.random(len(keys)) < prob) * rng.standard_normal(len(keys)) * rng.random() * sigma
             + 1).clip(0.3, 3.0)
    return {k: float(parent[k] * f) for k, f in zip(keys, v)}


def constrain(hyp: dict[str, float], meta: dict = META) -> dict[str, float]:
    """Clip every key of `meta` present in `hyp` to its limits and round it to 5 decimals (YOLOv5's round(x, 5))."""
    out = dict(hyp)
    for k, (_, lo, hi) in meta.items():
        if k in out:
            out[k] = round(min(max(float(out[k]), lo), hi), 5)
    return out


def read_evolve_csv(path: str | Path, hyp_keys: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(hyperparameter names, values (n, 7 + k)); checks the result columns and, if given, the hyp columns."""
    cols, rows = read_results_csv(path)
    losses = cols[len(METRIC_KEYS):N_RESULTS]
    if tuple(cols[:len(METRIC_KEYS)]) != METRIC_KEYS or len(losses) != 3 or not all(
            k.startswith("val/") and k.endswith("_loss") for k in losses):
        raise UserValueError(f"{path}: not an evolve.csv, the first columns must be {list(METRIC_KEYS)} then three "
                             f"val/<item>_loss columns, got {cols[:N_RESULTS]}")
    keys = cols[N_RESULTS:]
    if hyp_keys is not None and keys != list(hyp_keys):
        raise UserValueError(f"{path}: hyperparameter columns {keys} differ from this run's {list(hyp_keys)} "
                         "(another --hyp file or --noautoanchor setting?)")
    return keys, np.array(rows, dtype=float).reshape(len(rows), len(cols))


def next_hyp(csv_path: Path, base: dict[str, float], rng: np.random.Generator,
             parent: str = "single") -> dict[str, float]:
    """Generation 0 trains `base` (within limits); later ones a mutation of a parent drawn from evolve.csv."""
    if not csv_path.exists():
        return constrain(base)
    keys, x = read_evolve_csv(csv_path, list(base))
    if not len(x):
        return constrain(base)
    row = select_parent(x, rng, parent)
    return constrain(mutate(dict(zip(keys, row[N_RESULTS:].tolist())), rng))


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_evolve_row(csv_path: Path, results: list[float], hyp: dict[str, float],
                      loss_names: tuple[str, ...] = LOSS_NAMES) -> None:
    """Add one generation's row (header first when new, its loss columns named `loss_names`); the file is
    replaced atomically, never half written. An existing file must have the same columns."""
    keys, vals = (*result_keys(loss_names), *hyp), [*results, *hyp.values()]
    if len(results) != N_RESULTS:
        raise ValueError(f"evolve.csv row needs {N_RESULTS} results, got {len(results)}")
    header = ",".join("%20s" % k for k in keys) + "\n"
    old = csv_path.read_text(encoding="utf-8") if csv_path.exists() else header
    if old.strip() and [c.strip() for c in old.splitlines()[0].split(",")] != list(keys):
        raise UserValueError(f"{csv_path}: its columns {old.splitlines()[0].split(',')[:N_RESULTS]}... differ from "
                             f"this generation's {list(keys[:N_RESULTS])}... (another model's loss or --hyp file?)")
    if old and not old.endswith("\n"):
        old += "\n"
    _atomic_write(csv_path, old + ",".join("%20.5g" % v for v in vals) + "\n")


def best_row(x: np.ndarray) -> int:
    """Index of the fittest generation (the first of equals)."""
    return int(np.argmax(fitness(x)))


def write_best_yaml(csv_path: Path, yaml_path: Path) -> dict[str, float]:
    """hyp_evolve.yaml: YOLOv5's comment header (best and last generation, their results) then the best hyps."""
    keys, x = read_evolve_csv(csv_path)
    i = best_row(x)
    results = read_results_csv(csv_path)[0][:N_RESULTS]
    head = ("# YOLOv5 Hyperparameter Evolution Results\n"
            f"# Best generation: {i}\n# Last generation: {len(x) - 1}\n"
            "# " + ", ".join(f"{k:>20s}" for k in results) + "\n"
            "# " + ", ".join(f"{v:>20.5g}" for v in x[i, :N_RESULTS]) + "\n\n")
    best = {k: float(v) for k, v in zip(keys, x[i, N_RESULTS:])}
    _atomic_write(yaml_path, head + yaml.safe_dump(best, sort_keys=False))
    return best
