"""Hyperparameter evolution rules (YOLOv5 v7.0): mutation within limits, parent selection, evolve.csv and yaml."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from utils.hyp import load_hyp
from utils.metrics import fitness
from utils.train.evolve import (META, RESULT_KEYS, append_evolve_row, constrain, evolvable_hyp, mutate, next_hyp,
                                read_evolve_csv, select_parent, write_best_yaml)
from utils.train.evolve_loop import CSV_FILE, OPT_FILE, EvolvePlan, generation_loss_names, generations_done, plan_evolution
from utils.train.loggers import append_results_csv, result_keys
from utils.loss_v8 import V8DetectionLoss
from utils.train.evolve_plot import evolve_figure
from utils.train.options import TrainOptions

ROOT = Path(__file__).resolve().parents[1]
BASE = evolvable_hyp(load_hyp(ROOT / "data" / "hyps" / "hyp.scratch-low.yaml"), autoanchor=True)


def test_mutations_stay_inside_limits_over_many_draws():
    rng = np.random.default_rng(0)
    parent = dict(BASE)
    changed = np.zeros(len(BASE), dtype=int)
    for _ in range(3000):
        child = constrain(mutate(parent, rng))
        assert list(child) == list(BASE)
        for k, v in child.items():
            _, lo, hi = META[k]
            assert lo <= v <= hi, (k, v)
            assert v == round(v, 5)
        diff = np.array([child[k] != parent[k] for k in BASE])
        changed += diff
        parent = child  # walk: a chain of mutations must not escape the limits either
    gains = np.array([META[k][0] for k in BASE])
    assert (changed[gains == 0] == 0).all()  # iou_t, fl_gamma, perspective, fliplr are never mutated
    nonzero = np.array([BASE[k] != 0 for k in BASE])
    assert (changed[(gains > 0) & nonzero] > 0).all()
    assert (changed[~nonzero] == 0).all()  # mutation multiplies: a value of 0 (degrees, mixup...) stays 0


def test_mutation_factors_follow_yolov5_formula():
    """factor = clip(1 + gain * [u < 0.8] * N(0,1) * U(0,1) * 0.2, 0.3, 3): about 80% of gained keys change."""
    rng = np.random.default_rng(1)
    ones = {k: 1.0 for k in META}
    f = np.array([[m[k] for k in META] for m in (mutate(ones, rng) for _ in range(4000))])
    gains = np.array([META[k][0] for k in META])
    assert f.min() >= 0.3 and f.max() <= 3.0
    frac = (f[:, gains == 1] != 1).mean()
    assert 0.77 < frac < 0.83
    # the spread scales with the gain: momentum (0.3) moves less than lr0 (1), anchors (2) more
    sd = lambda k: f[:, list(META).index(k)].std()  # noqa: E731
    assert sd("momentum") < sd("lr0") < sd("anchors")
    assert abs(sd("momentum") / sd("lr0") - 0.3) < 0.05


def _rows(fits: list[float], nh: int = 3) -> np.ndarray:
    """Rows whose fitness is exactly `fits` (mAP50-95 = fitness / 0.9) and hyp columns 10*i + j."""
    x = np.zeros((len(fits), 7 + nh))
    x[:, 3] = np.array(fits) / 0.9
    x[:, 7:] = np.arange(len(fits))[:, None] * 10 + np.arange(nh)
    return x


def test_single_parent_drawn_from_top5_by_fitness():
    x = _rows([0.1, 0.5, 0.3, 0.0, 0.9, 0.7])  # the 0.0 row is not among the top 5
    rng = np.random.default_rng(0)
    picks = np.array([select_parent(x, rng)[7] // 10 for _ in range(20000)]).astype(int)
    counts = np.bincount(picks, minlength=6) / len(picks)
    top = np.array([0.1, 0.5, 0.3, 0.9, 0.7])
    w = top - top.min() + 1e-6
    expect = dict(zip([0, 1, 2, 4, 5], w / w.sum()))
    assert counts[3] == 0
    for i, p in expect.items():
        assert abs(counts[i] - p) < 0.015, (i, counts[i], p)


def test_weighted_parent_is_fitness_weighted_mean():
    x = _rows([0.2, 0.4, 0.8])
    p = select_parent(x, np.random.default_rng(0), "weighted")
    w = np.array([0.8, 0.4, 0.2]) - 0.2 + 1e-6  # sorted by fitness
    np.testing.assert_allclose(p[7:], (x[[2, 1, 0], 7:] * w[:, None]).sum(0) / w.sum())
    with pytest.raises(ValueError, match="parent selection"):
        select_parent(x, np.random.default_rng(0), "best")


def test_csv_rows_yaml_header_and_plot(tmp_path):
    csv = tmp_path / "evolve.csv"
    hyps = [constrain(BASE), constrain(mutate(BASE, np.random.default_rng(2))), constrain(BASE | {"lr0": 0.02})]
    results = [[0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01], [0.6, 0.5, 0.6, 0.4, 0.1, 0.05, 0.01],
               [0.1, 0.1, 0.1, 0.05, 0.2, 0.1, 0.02]]
    for r, h in zip(results, hyps):
        append_evolve_row(csv, r, h)
    lines = csv.read_text().splitlines()
    assert lines[0] == ",".join("%20s" % k for k in (*RESULT_KEYS, *BASE))  # YOLOv5's padded header
    assert lines[2].split(",")[7] == "%20.5g" % hyps[1]["lr0"]
    keys, x = read_evolve_csv(csv, list(BASE))
    assert keys == list(BASE) and x.shape == (3, 7 + len(BASE))
    np.testing.assert_allclose(x[:, :7], results, rtol=1e-4)
    best = write_best_yaml(csv, tmp_path / "hyp_evolve.yaml")
    text = (tmp_path / "hyp_evolve.yaml").read_text()
    assert text.startswith("# YOLOv5 Hyperparameter Evolution Results\n# Best generation: 1\n# Last generation: 2\n")
    assert best == pytest.approx(hyps[1], rel=1e-4)
    assert load_hyp(tmp_path / "hyp_evolve.yaml") == pytest.approx(hyps[1], rel=1e-4)  # usable as --hyp
    fig = evolve_figure(csv)
    assert len(fig.axes) == len(BASE)
    assert fig.axes[0].get_title() == f"lr0 = {hyps[1]['lr0']:.3g}"
    marked = [ln for ln in fig.axes[0].get_lines() if ln.get_marker() == "+"][0]
    assert marked.get_xdata()[0] == pytest.approx(hyps[1]["lr0"], rel=1e-4)
    assert marked.get_ydata()[0] == pytest.approx(fitness(x).max())


def test_next_hyp_base_first_then_mutation_of_csv_parent(tmp_path):
    csv = tmp_path / "evolve.csv"
    rng = np.random.default_rng(3)
    assert next_hyp(csv, BASE, rng) == constrain(BASE)
    append_evolve_row(csv, [0.0] * 3 + [0.5] + [0.0] * 3, constrain(BASE))
    child = next_hyp(csv, BASE, rng)
    assert child != constrain(BASE) and list(child) == list(BASE)
    no_anchor = evolvable_hyp(BASE, autoanchor=False)
    with pytest.raises(ValueError, match="hyperparameter columns"):
        next_hyp(csv, no_anchor, rng)


def test_partial_csv_is_replaced_not_appended(tmp_path):
    """A row is written by replacing the whole file: no temp file is left and the old rows stay."""
    csv = tmp_path / "evolve.csv"
    append_evolve_row(csv, [0.1] * 7, constrain(BASE))
    append_evolve_row(csv, [0.2] * 7, constrain(BASE))
    assert generations_done(csv) == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["evolve.csv"]
    with pytest.raises(ValueError, match="7 results"):
        append_evolve_row(csv, [0.1] * 6, constrain(BASE))
    assert generations_done(csv) == 2


def test_anchor_free_loss_names_its_columns(tmp_path):
    """evolve.csv's loss columns are the ones the generation's results.csv names (v8: box, cls, dfl), not YOLOv5's."""
    plan = EvolvePlan(tmp_path, TrainOptions(), 2)
    assert generation_loss_names(plan) == ("box", "obj", "cls")  # nothing trained yet: YOLOv5's
    names = V8DetectionLoss.item_names
    (tmp_path / "train").mkdir()
    append_results_csv(tmp_path / "train" / "results.csv", 0, [0.5] * 13, result_keys(names))
    assert generation_loss_names(plan) == ("box", "cls", "dfl")
    append_evolve_row(plan.csv, [0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01], constrain(BASE), names)
    header = [c.strip() for c in plan.csv.read_text().splitlines()[0].split(",")]
    assert header[4:7] == ["val/box_loss", "val/cls_loss", "val/dfl_loss"]
    keys, x = read_evolve_csv(plan.csv, list(BASE))
    assert keys == list(BASE) and x[0, 6] == pytest.approx(0.01)
    (tmp_path / "train" / "results.csv").unlink()  # a generation that diverged in its first epoch: evolve.csv's
    assert generation_loss_names(plan) == names
    write_best_yaml(plan.csv, tmp_path / "hyp_evolve.yaml")
    assert "val/dfl_loss" in (tmp_path / "hyp_evolve.yaml").read_text().splitlines()[3]
    with pytest.raises(ValueError, match="differ from this generation"):
        append_evolve_row(plan.csv, [0.1] * 7, constrain(BASE))  # YOLOv5's names into a v8 evolution
    plan.csv.write_text(plan.csv.read_text().replace("val/dfl_loss", "   val/dfl_lost"))
    with pytest.raises(ValueError, match="not an evolve.csv"):
        read_evolve_csv(plan.csv)


def _evolution_folder(d: Path, opts: TrainOptions, rows: int) -> None:
    d.mkdir(parents=True)
    (d / OPT_FILE).write_text(yaml.safe_dump(opts.to_dict()))
    for _ in range(rows):
        append_evolve_row(d / CSV_FILE, [0.1] * 7, constrain(BASE))


def test_same_command_continues_unfinished_evolution(tmp_path):
    opts = TrainOptions(data="d.yaml", epochs=1, evolve=3, project=str(tmp_path), name="exp")
    _evolution_folder(tmp_path / "exp", opts, rows=2)
    plan = plan_evolution(opts)
    assert plan.dir == tmp_path / "exp" and plan.generations == 3
    assert plan_evolution(dataclasses.replace(opts, device="cpu", workers=0)).dir == tmp_path / "exp"
    assert plan_evolution(dataclasses.replace(opts, epochs=2)).dir == tmp_path / "exp2"  # another command
    assert plan_evolution(dataclasses.replace(opts, evolve=2)).dir == tmp_path / "exp2"  # already finished
    resumed = plan_evolution(TrainOptions(resume_evolve=str(tmp_path / "exp" / CSV_FILE), device="cpu"))
    assert resumed.dir == tmp_path / "exp" and resumed.generations == 3 and resumed.opts.epochs == 1
    assert resumed.opts.device == "cpu"
    with pytest.raises(FileNotFoundError, match="not an evolution folder"):
        plan_evolution(TrainOptions(resume_evolve=str(tmp_path)))


def test_default_project_is_runs_evolve():
    assert plan_evolution(TrainOptions(evolve=2)).dir.parent == Path("runs/evolve")
