"""Evolution runs: the runs/evolve/exp folder, continuing an interrupted one, and the generation loop.

The folder keeps evolve_opt.yaml (the run's options) and evolve.csv (one row per finished generation, written
atomically), so a run killed at any point continues from its last finished generation with
`--resume-evolve DIR|evolve.csv` or by repeating the same command. Each generation trains into DIR/train
(replaced by the next one). Under torchrun every rank trains each generation (DDP); rank 0 reads the csv,
mutates, broadcasts the hyperparameters and writes the files.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from utils.cli import UserFileNotFoundError
from utils.hyp import load_hyp
from utils.paths import increment_path
from utils.train.ddp import DistInfo, broadcast_object, cleanup, ddp_device, init_process_group
from utils.train.evolve import N_RESULTS, append_evolve_row, evolvable_hyp, next_hyp, result_keys, write_best_yaml
from utils.train.loggers import LOSS_NAMES, read_results_csv
from utils.train.loop import TrainingDiverged
from utils.train.options import TrainOptions

LOGGER = logging.getLogger("yolo")
OPT_FILE, CSV_FILE, YAML_FILE = "evolve_opt.yaml", "evolve.csv", "hyp_evolve.yaml"
TRAIN_PROJECT, EVOLVE_PROJECT = "runs/train", "runs/evolve"
# options that may differ when the same evolution is continued
VOLATILE = ("device", "workers", "threads", "evolve", "resume_evolve", "exist_ok", "save_dir")

TrainFn = Callable[[TrainOptions, dict], list]  # (generation options, hyp) -> the 7 results (evolve.result_keys)


@dataclass
class EvolvePlan:
    """Where an evolution writes, its options and its total number of generations."""
    dir: Path
    opts: TrainOptions
    generations: int

    @property
    def csv(self) -> Path:
        return self.dir / CSV_FILE


def generations_done(csv: Path) -> int:
    """Finished generations: the data rows of evolve.csv."""
    if not csv.exists():
        return 0
    return max(sum(1 for ln in csv.read_text(encoding="utf-8").splitlines() if ln.strip(" ,")) - 1, 0)


def evolve_dir_of(path: str | Path) -> Path:
    """The evolution folder given as itself or as its evolve.csv; it must hold evolve_opt.yaml."""
    p = Path(path)
    d = p.parent if p.name == CSV_FILE or p.is_file() else p
    if not (d / OPT_FILE).is_file():
        raise UserFileNotFoundError(f"--resume-evolve: {d} is not an evolution folder (no {OPT_FILE} in it)")
    return d


def _saved_options(d: Path) -> TrainOptions:
    with open(d / OPT_FILE, encoding="utf-8") as f:
        return TrainOptions.from_dict(yaml.safe_load(f), str(d / OPT_FILE))


def _same_run(a: TrainOptions, b: TrainOptions) -> bool:
    strip = lambda o: {k: v for k, v in o.to_dict().items() if k not in VOLATILE}  # noqa: E731
    return strip(a) == strip(b)


def _unfinished(project: Path, opts: TrainOptions, n: int) -> Path | None:
    """The newest project/name* folder of an evolution with the same options and fewer than n generations."""
    found = [d for d in project.glob(f"{opts.name}*") if (d / OPT_FILE).is_file()]
    for d in sorted(found, key=lambda d: (d / OPT_FILE).stat().st_mtime, reverse=True):
        try:
            if _same_run(_saved_options(d), opts) and generations_done(d / CSV_FILE) < n:
                return d
        except (KeyError, TypeError, ValueError):
            continue
    return None


def plan_evolution(opts: TrainOptions) -> EvolvePlan:
    """New folder, the folder named by --resume-evolve, or the unfinished one of the same command."""
    if opts.resume_evolve:
        d = evolve_dir_of(opts.resume_evolve)
        saved = _saved_options(d)
        n = opts.evolve or saved.evolve
        saved = dataclasses.replace(saved, device=opts.device, workers=opts.workers, threads=opts.threads, evolve=n)
        return EvolvePlan(d, saved, int(n))
    if opts.project == TRAIN_PROJECT:
        opts = dataclasses.replace(opts, project=EVOLVE_PROJECT)
    n = int(opts.evolve)
    d = _unfinished(Path(opts.project), opts, n) or increment_path(Path(opts.project) / opts.name, opts.exist_ok)
    return EvolvePlan(d, opts, n)


def generation_options(plan: EvolvePlan) -> TrainOptions:
    """One generation: validate and save only after the final epoch, no plots, into DIR/train."""
    return dataclasses.replace(plan.opts, evolve=None, resume_evolve="", resume=False, noval=True, nosave=True,
                               noplots=True, project=str(plan.dir), name="train", exist_ok=True, save_dir="")


def _start(plan: EvolvePlan) -> dict:
    """Create the folder and evolve_opt.yaml; the base hyperparameters."""
    plan.dir.mkdir(parents=True, exist_ok=True)
    if not (plan.dir / OPT_FILE).exists():
        (plan.dir / OPT_FILE).write_text(yaml.safe_dump(plan.opts.to_dict(), sort_keys=False), encoding="utf-8")
    done = generations_done(plan.csv)
    if done:
        LOGGER.info(f"evolve: continuing {plan.dir}, {done}/{plan.generations} generations done")
    return evolvable_hyp(load_hyp(plan.opts.hyp), autoanchor=not plan.opts.noautoanchor)


def _next_job(plan: EvolvePlan, base: dict, rng: np.random.Generator, parent: str) -> tuple[int, dict] | None:
    done = generations_done(plan.csv)
    return (done, next_hyp(plan.csv, base, rng, parent)) if done < plan.generations else None


def generation_loss_names(plan: EvolvePlan) -> tuple[str, ...]:
    """The loss item names of this evolution: the val/<item>_loss columns the generation's training wrote in its
    results.csv (named by its loss's `item_names`), else those of evolve.csv (a generation that diverged in its
    first epoch), else YOLOv5's."""
    for f in (plan.dir / "train" / "results.csv", plan.csv):
        if f.is_file():
            cols = read_results_csv(f)[0]
            names = tuple(c[len("val/"):-len("_loss")] for c in cols if c.startswith("val/") and c.endswith("_loss"))
            if len(names) == 3:
                return names
    return LOSS_NAMES


def _record(plan: EvolvePlan, gen: int, results: list, hyp: dict) -> None:
    names = generation_loss_names(plan)
    append_evolve_row(plan.csv, [float(r) for r in results], hyp, names)
    write_best_yaml(plan.csv, plan.dir / YAML_FILE)
    keys = (*result_keys(names), *hyp)
    LOGGER.info(f"evolve: {gen + 1}/{plan.generations} generations finished, current result:\n"
                + ", ".join(f"{k:>20s}" for k in keys) + "\n"
                + ", ".join(f"{v:20.5g}" for v in (*results, *hyp.values())))


def run_evolution(opts: TrainOptions, train_fn: TrainFn, info: DistInfo, device, parent: str = "single",
                  rng: np.random.Generator | None = None) -> Path:
    """Train the remaining generations of the evolution `opts` describes; returns its folder."""
    init_process_group(info, ddp_device(info, device))
    try:
        plan = broadcast_object(plan_evolution(opts) if info.main else None, info)
        base = _start(plan) if info.main else {}
        rng = rng or np.random.default_rng()
        while (job := broadcast_object(_next_job(plan, base, rng, parent) if info.main else None, info)):
            gen, hyp = job
            LOGGER.info(f"\nevolve: generation {gen + 1}/{plan.generations} in {plan.dir}")
            if info.main:
                shutil.rmtree(plan.dir / "train", ignore_errors=True)
            try:
                results = train_fn(generation_options(plan), dict(hyp))
            except TrainingDiverged as e:  # a mutation may diverge: it scores 0 and evolution goes on
                LOGGER.warning(f"evolve: generation {gen + 1} diverged, recorded with zero results ({e})")
                results = [0.0] * N_RESULTS
            if info.main:
                _record(plan, gen, results, hyp)
        if info.main:
            _finish(plan)
        return plan.dir
    finally:
        cleanup(info)


def _finish(plan: EvolvePlan) -> None:
    from utils.train.evolve_plot import plot_evolve

    if not plan.csv.exists():
        return
    png = plot_evolve(plan.csv)
    LOGGER.info(f"Hyperparameter evolution finished {generations_done(plan.csv)} generations\n"
                f"Results saved to {plan.dir} ({CSV_FILE}, {YAML_FILE}, {png.name})\n"
                f"Usage example: $ python train.py --hyp {plan.dir / YAML_FILE}")
