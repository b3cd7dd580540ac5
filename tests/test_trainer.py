"""The Trainer owns a run and fires its hooks in order; callbacks attach to them (utils/train/hooks.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.demo_subset import demo_subset_yaml
from utils.train.ddp import DistInfo
from utils.train.hooks import EVENTS, Hooks
from utils.train.loggers import read_results_csv
from utils.train.options import TrainOptions
from utils.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_hooks_call_in_order_and_refuse_unknown_events() -> None:
    hooks, seen = Hooks(), []
    hooks.add("epoch_end", lambda t, **kw: seen.append(("a", kw["epoch"])))
    hooks.add("epoch_end", lambda t, **kw: seen.append(("b", kw["epoch"])))
    hooks.fire("epoch_end", None, epoch=3)
    hooks.fire("epoch_start", None, epoch=3)  # nothing attached: no call
    assert seen == [("a", 3), ("b", 3)]
    with pytest.raises(KeyError, match="unknown training event 'epoch_ended'"):
        hooks.add("epoch_ended", print)
    with pytest.raises(KeyError, match="known"):
        hooks.fire("nope", None)


def test_a_run_fires_every_event_and_a_hook_can_stop_it(tmp_path: Path) -> None:
    """Two epochs asked; a hook stops after the first. Events arrive in the documented order, every batch fires
    step_end, last.pt and best.pt fire `checkpoint`, results.csv has the one epoch that ran."""
    data = demo_subset_yaml(tmp_path, 8, 4)
    opts = TrainOptions(data=str(data), cfg="yolov5n.yaml", imgsz=64, epochs=2, batch_size=4, accumulate=1,
                        noautoanchor=True, noplots=True, workers=0, project=str(tmp_path / "runs"), name="hooks")
    t = Trainer(opts, DistInfo(), torch.device("cpu")).setup()
    events: list[tuple] = []
    for name in EVENTS:
        t.hooks.add(name, lambda _t, _n=name, **kw: events.append((_n, kw.get("kind", kw.get("epoch")))))

    def stop_after_first(trainer: Trainer, epoch: int, **_: object) -> None:
        trainer.stop = True

    t.hooks.add("epoch_end", stop_after_first)
    res = t.fit()
    names = [e[0] for e in events]
    assert names[0] == "train_start" and names[-1] == "train_end"
    assert names.count("epoch_start") == 1 and names.count("step_end") == len(t.loader) == 2
    # the checkpoint saver is an epoch_end callback attached in setup(), before this test's recorder
    assert names.index("val_end") < names.index("checkpoint") < names.index("epoch_end") < names.index("train_end")
    assert [e[1] for e in events if e[0] == "checkpoint"] == ["last", "best"]
    assert res.epochs_done == 1 and res.last == t.save_dir / "weights" / "last.pt" and res.last.is_file()
    _, rows = read_results_csv(t.save_dir / "results.csv")
    assert [r[0] for r in rows] == [0.0]
    assert t.optimizer_steps == 2 and t.last_opt_step == 1
